import json
from tests.central.epcis_fixtures import api, supplier_document, schema_check  # noqa
def test_smoke(api):
    r = api.client.get("/epcis/events", params={"perPage": 5}, headers=api.h["viewer"])
    print(r.status_code, r.headers)
    doc = r.json()
    print(json.dumps(doc, indent=1)[:1500])
    print(schema_check(doc))
    r = api.client.post("/epcis/capture", json=supplier_document(), headers=api.h["recall-manager"])
    print(r.status_code, r.headers, r.text)
    r = api.client.get("/epcis/events", params={"MATCH_anyEPC": "urn:epc:idpat:sscc:4098765.*"}, headers=api.h["viewer"])
    print(r.status_code, r.text[:3000])
    print(schema_check(r.json()))
