"""Master data for FSMA 204: sites and partners (CSV, all or nothing), product description
and TLC source columns of the products and lots files, migration 0004 down and up."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from central.cli import main
from central.db.engine import alembic_config
from central.masterdata.importer import ImportProblems, import_master_data, parse_products
from central.masterdata.parties import Place, import_places, parse_places
from mqtt_topics.examples import GLN_CUSTOMER, GLN_SITE, GLN_SUPPLIER
from tests.central.fsma_day import PARTNERS_CSV, SITES_CSV, TOMATO

BAD_GLN = GLN_SITE[:-1] + str((int(GLN_SITE[-1]) + 1) % 10)


def test_sites_and_partners_parse() -> None:
    (site,) = parse_places(SITES_CSV, "s.csv", "sites")
    assert site == Place(
        "plant-1",
        "Acme Salsa Plant",
        GLN_SITE,
        "1 Canal St",
        "Salinas",
        "CA",
        "93901",
        "US",
        "+1 831 555 0100",
    )
    farm, grocer = parse_places(PARTNERS_CSV, "p.csv", "partners")
    assert (farm.key, grocer.key, grocer.phone) == (GLN_SUPPLIER, GLN_CUSTOMER, None)
    # a BOM, a lower-case country and only the required columns are fine
    (p,) = parse_places("\ufeffparty,name,country\nSUP-9,Nine,de\n", "p.csv", "partners")
    assert (p.key, p.country, p.street) == ("SUP-9", "DE", None)


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("sites", "site,name\nplant-1,\n", "s.csv:2: name is required"),
        ("sites", "site,name,country\nplant-1,A,USA\n", "s.csv:2: country 'USA' must be"),
        ("sites", "site,name,phone\nplant-1,A,call me\n", "s.csv:2: phone 'call me' must be"),
        ("sites", f"site,name,gln\nplant-1,A,{BAD_GLN}\n", f"s.csv:2: gln '{BAD_GLN}' must be"),
        ("sites", "site,name,gln\nplant-1,A,12345\n", "s.csv:2: gln '12345' must be a GLN"),
        ("sites", "site,name\nplant 1,A\n", "s.csv:2: site 'plant 1' must be 1 to 64"),
        ("sites", "site,name\np,A\np,B\n", "s.csv:3: site p repeats line 2"),
        (
            "sites",
            f"site,name,gln\np,A,{GLN_SITE}\nq,B,{GLN_SITE}\n",
            f"s.csv:3: gln {GLN_SITE} repeats line 2",
        ),
        ("sites", "site,name,street\np,A,\x07\n", "s.csv:2: street must be at most 200 printable"),
        ("sites", "site,name,street\np,A," + "x" * 201 + "\n", "s.csv:2: street must be"),
        ("sites", "site,name,colour\n", "s.csv:1: unknown column(s) colour"),
        ("sites", "name\n", "s.csv:1: missing column(s) site"),
        ("partners", "party,name\nunknown,A\n", "s.csv:2: party 'unknown' is what events say"),
        ("partners", f"party,name\n{BAD_GLN},A\n", f"s.csv:2: party '{BAD_GLN}' must be a GLN"),
        ("partners", "party,name\nP,A,B\n", "s.csv:2: 3 values, the header has 2"),
    ],
)
def test_bad_rows_name_file_and_line(kind: str, data: str, message: str) -> None:
    with pytest.raises(ImportProblems) as exc:
        parse_places(data, "s.csv", kind)
    assert exc.value.problems[0].startswith(message), exc.value.problems


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as c:
        return int(c.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_import_is_all_or_nothing_and_rows_replace(engine: Engine, tmp_path: Path) -> None:
    s, p = tmp_path / "s.csv", tmp_path / "p.csv"
    s.write_text(SITES_CSV)
    p.write_text(PARTNERS_CSV + "x,,\n")
    with pytest.raises(ImportProblems) as exc, engine.begin() as c:
        import_places(c, s, p)
    assert exc.value.problems == [f"{p}:4: 3 values, the header has 8"]
    assert _count(engine, "sites") == _count(engine, "partners") == 0
    p.write_text(PARTNERS_CSV)
    with engine.begin() as c:
        counts = import_places(c, s, p)
    assert (counts.sites, counts.partners) == (1, 2)
    # a row replaces what was stored: the empty phone clears it
    s.write_text(f"site,name,gln,phone\nplant-1,Acme West,{GLN_SITE},\n")
    with engine.begin() as c:
        import_places(c, s, None)
    with engine.connect() as c:
        row = c.execute(text("SELECT name, phone, city FROM sites")).one()
    assert tuple(row) == ("Acme West", None, None)


def test_a_site_gln_belongs_to_one_site(engine: Engine, tmp_path: Path) -> None:
    s = tmp_path / "s.csv"
    s.write_text(SITES_CSV)
    with engine.begin() as c:
        import_places(c, s)
    s.write_text(f"site,name,gln\nplant-2,Other,{GLN_SITE}\n")
    clash = f"GLN {GLN_SITE} already belongs to site plant-1"
    with pytest.raises(ImportProblems, match=clash), engine.begin() as c:
        import_places(c, s)
    assert _count(engine, "sites") == 1


def test_product_description_columns_keep_or_clear(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text(
        f"gtin,tracking,product_name,commodity,variety\n{TOMATO},lot,Roma tomatoes,Tomatoes,Roma\n"
    )
    with engine.begin() as c:
        import_master_data(c, f)
    # a file without those columns leaves them alone; an empty cell clears one
    f.write_text(f"gtin,tracking,description,variety\n{TOMATO},lot,Tomatoes,\n")
    with engine.begin() as c:
        import_master_data(c, f)
    with engine.connect() as c:
        got = c.execute(
            text("SELECT description, product_name, commodity, variety, brand FROM products")
        ).one()
    assert tuple(got) == ("Tomatoes", "Roma tomatoes", "Tomatoes", None, None)
    with pytest.raises(ImportProblems, match=r"p\.csv:2: pack_style must be at most 200"):
        parse_products(f"gtin,tracking,pack_style\n{TOMATO},lot,{'x' * 201}\n", "p.csv")


def test_lot_tlc_source_columns(engine: Engine, tmp_path: Path) -> None:
    p, lo = tmp_path / "p.csv", tmp_path / "l.csv"
    p.write_text(f"gtin,tracking\n{TOMATO},lot\n")
    lo.write_text(f"gtin,lot,tlc_source,tlc_source_reference\n{TOMATO},T1,{GLN_SUPPLIER},R-1\n")
    with engine.begin() as c:
        import_master_data(c, p, lo)
    lo.write_text(f"gtin,lot,expiry\n{TOMATO},T1,2027-01-31\n")
    with engine.begin() as c:
        import_master_data(c, None, lo)
    with engine.connect() as c:
        got = c.execute(text("SELECT expiry, tlc_source, tlc_source_reference FROM lots")).one()
    assert (str(got[0]), got[1], got[2]) == ("2027-01-31", GLN_SUPPLIER, "R-1")
    lo.write_text(
        f"gtin,lot,location,tlc_source\n{TOMATO},T1,A,{GLN_SUPPLIER}\n{TOMATO},T1,B,OTHER\n"
    )
    with pytest.raises(ImportProblems, match="disagrees with line 2"), engine.begin() as c:
        import_master_data(c, None, lo)


def test_cli_imports_sites_and_partners(
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    s, p = tmp_path / "s.csv", tmp_path / "p.csv"
    s.write_text(SITES_CSV)
    p.write_text("party,name,phone\nP1,A,nope!\n")
    assert main(["import", "--sites", str(s), "--partners", str(p)]) == 1
    err = capsys.readouterr().err
    assert f"{p}:2: phone 'nope!' must be" in err and "nothing imported (1 problem(s))" in err
    assert _count(engine, "sites") == 0
    p.write_text(PARTNERS_CSV)
    assert main(["import", "--sites", str(s), "--partners", str(p)]) == 0
    assert "1 site(s), 2 partner(s)" in capsys.readouterr().out
    assert main(["import"]) == 2


def test_migration_0004_goes_down_and_up(engine: Engine) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    tables = set(inspect(engine).get_table_names())
    assert "sites" not in tables and "partners" not in tables
    assert "commodity" not in {c["name"] for c in inspect(engine).get_columns("products")}
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert {"sites", "partners"} <= set(inspect(engine).get_table_names())
    assert "tlc_source" in {c["name"] for c in inspect(engine).get_columns("lots")}


def test_schema_py_mirrors_migration_0004(engine: Engine) -> None:
    from central.db import schema

    db = inspect(engine)
    for table in ("sites", "partners", "products", "lots"):
        mine = {c.name for c in schema.metadata.tables[table].columns}
        assert mine == {c["name"] for c in db.get_columns(table)}, table
