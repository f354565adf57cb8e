"""Provider onboarding and vetting: step-by-step applications resumed on another device,
document uploads with the GraphQL multipart request spec through the real HTTP app (type by magic
bytes, size limit, SHA-256), submission checks, the admin queue and its decisions (audited and
emailed), the admin's document download, and "only approved providers are found or assigned"."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.providers import onboarding
from domain.shared import outbox
from models import ApplicationDocument, AuditEntry, Email, Provider, ProviderApplication, User
from models.db import session_scope
from resolvers.ids import decode_id, encode_id
from settings import get_settings
from tests.support.factories import make_provider, make_user, run_worker, token_for
from tests.support.graphql_client import error_codes, gql
from tests.support.orders import ASSIGN, domain_purchase, pay
from tests.support.statements import count_statements

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(40)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40)
EXE = b"MZ\x90\x00" + bytes(60)
DOUALA = {"latitude": 4.0511, "longitude": 9.7679}
BUSINESS = {"businessName": "Eko Plumbing SARL", "phone": "+237 6 71 23 45 67", "address": "12 Rue Joss, Bonanjo",
            "city": "Douala", "countryCode": "cm", "registrationNumber": "RC/DLA/2026/B/123"}

APPLICATION_FIELDS = """
  id status businessName phone address city countryCode categories
  serviceArea { center { latitude longitude } radiusKm polygon { latitude longitude } }
  progress { completedSteps lastStep }
  documents { id kind filename contentType sizeBytes sha256 downloadPath }
  decisionReason requestedDocumentKinds providerId
"""
SAVE = f"""mutation($input: SaveProviderApplicationInput!) {{
  saveProviderApplication(input: $input) {{ application {{ {APPLICATION_FIELDS} }} errors {{ field code message }} }} }}"""
UPLOAD = f"""mutation($input: UploadApplicationDocumentInput!) {{
  uploadApplicationDocument(input: $input) {{
    document {{ id kind filename contentType sizeBytes sha256 }}
    application {{ {APPLICATION_FIELDS} }} errors {{ field code message }} }} }}"""
REMOVE = """mutation($input: RemoveApplicationDocumentInput!) {
  removeApplicationDocument(input: $input) { application { documents { id } } errors { field code message } } }"""
SUBMIT = f"""mutation($input: SubmitProviderApplicationInput!) {{
  submitProviderApplication(input: $input) {{ application {{ {APPLICATION_FIELDS} submittedAt }}
  errors {{ field code message }} }} }}"""
MINE = f"query {{ myProviderApplication {{ {APPLICATION_FIELDS} }} }}"
QUEUE = """query($status: ApplicationStatus, $first: Int, $after: String) {
  providerApplications(status: $status, first: $first, after: $after) {
    edges { cursor node { id status businessName documents { kind sha256 } } }
    pageInfo { hasNextPage endCursor } } }"""
APPROVE = f"""mutation($input: ApproveProviderApplicationInput!) {{
  approveProviderApplication(input: $input) {{ application {{ {APPLICATION_FIELDS} decidedAt }}
  errors {{ field code message }} }} }}"""
REJECT = f"""mutation($input: RejectProviderApplicationInput!) {{
  rejectProviderApplication(input: $input) {{ application {{ {APPLICATION_FIELDS} }} errors {{ field code message }} }} }}"""
REQUEST_DOCS = f"""mutation($input: RequestApplicationDocumentsInput!) {{
  requestApplicationDocuments(input: $input) {{ application {{ {APPLICATION_FIELDS} }}
  errors {{ field code message }} }} }}"""
NEARBY = """query($near: GeoPointInput!) { providersNearby(near: $near, radiusKm: 10) {
  edges { node { provider { id displayName } } } } }"""


@pytest.fixture(autouse=True)
def uploads_dir(tmp_path, monkeypatch) -> Path:
    """Every test stores documents on local disk under its own temporary directory."""
    directory = tmp_path / "uploads"
    monkeypatch.setattr(get_settings(), "storage_backend", "local")
    monkeypatch.setattr(get_settings(), "storage_local_dir", directory)
    return directory


@pytest.fixture(autouse=True)
def invalidations(monkeypatch) -> list[int]:
    """Provider ids whose discovery cache the API invalidated after commit (each call still goes on
    to the real domain.discovery.invalidate_provider)."""
    from resolvers.providers import onboarding as onb_resolvers

    seen: list[int] = []
    real = onb_resolvers._invalidate_discovery

    async def record(provider_id: int) -> None:
        seen.append(provider_id)
        await real(provider_id)

    monkeypatch.setattr(onb_resolvers, "_invalidate_discovery", record)
    return seen


def stored_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


async def upload(client, token: str, kind: str, data: bytes, *, filename: str = "scan.pdf",
                 content_type: str = "application/pdf", application_id: str | None = None):
    """POST a GraphQL multipart request (spec: `operations`, `map`, then the file part) and return the
    HTTP response."""
    variables = {"input": {"kind": kind, "file": None, **({"applicationId": application_id} if application_id else {})}}
    return await client.post(
        "/graphql", headers={"Authorization": f"Bearer {token}"},
        data={"operations": json.dumps({"query": UPLOAD, "variables": variables}),
              "map": json.dumps({"0": ["variables.input.file"]})},
        files={"0": (filename, data, content_type)},
    )


async def save(client, token: str, step: str, **data) -> dict:
    body = await gql(client, SAVE, {"input": {"step": step, **data}}, token=token)
    return body["data"]["saveProviderApplication"]


async def complete_application(client, token: str) -> dict:
    """A full application through the API (business, categories, area, both required documents)."""
    assert (await save(client, token, "BUSINESS", business=BUSINESS))["errors"] == []
    assert (await save(client, token, "CATEGORIES", categories=["Plumbing", "drains"]))["errors"] == []
    assert (await save(client, token, "SERVICE_AREA", serviceArea={"center": DOUALA, "radiusKm": 15}))["errors"] == []
    for kind, data in (("ID_CARD", JPEG), ("BUSINESS_REGISTRATION", PDF)):
        r = (await upload(client, token, kind, data, content_type="image/jpeg" if data is JPEG else "application/pdf"))
        assert r.json()["data"]["uploadApplicationDocument"]["errors"] == []
    submitted = (await gql(client, SUBMIT, {"input": {}}, token=token))["data"]["submitProviderApplication"]
    assert submitted["errors"] == []
    return submitted["application"]


async def applicant(email: str = "ada@example.cm") -> tuple[User, str]:
    user = await make_user(email, full_name="Ada Eko")
    return user, await token_for(user)


async def admin_token() -> str:
    return await token_for(await make_user("ops@odim.local", role="admin", full_name="Operator"))


async def rows(model, *where) -> list:
    async with session_scope() as s:
        return list((await s.scalars(select(model).where(*where).order_by(model.id))).all())


async def deliver() -> None:
    await outbox.relay()
    await run_worker()


# --- uploads -----------------------------------------------------------------------------------------

async def test_a_pdf_uploaded_with_the_multipart_spec_is_stored_with_its_sha256(api_client, uploads_dir):
    # given: an account that started an application
    user, token = await applicant()
    await save(api_client, token, "BUSINESS", business=BUSINESS)
    # when: the file goes through the real HTTP app as a multipart request
    response = await upload(api_client, token, "BUSINESS_REGISTRATION", PDF, filename="registre-commerce.pdf")
    # then
    assert response.status_code == 200
    payload = response.json()["data"]["uploadApplicationDocument"]
    assert payload["errors"] == []
    assert payload["document"]["kind"] == "BUSINESS_REGISTRATION"
    assert payload["document"]["filename"] == "registre-commerce.pdf"
    assert payload["document"]["contentType"] == "application/pdf"
    assert payload["document"]["sizeBytes"] == len(PDF)
    assert payload["document"]["sha256"] == hashlib.sha256(PDF).hexdigest()
    [doc] = await rows(ApplicationDocument)
    assert doc.sha256 == hashlib.sha256(PDF).hexdigest()
    assert doc.storage_key.startswith("applications/") and "registre" not in doc.storage_key
    # and on disk the file is sealed (AES-256-GCM bound to its key): no byte of the PDF shows
    [stored] = [p.read_bytes() for p in stored_files(uploads_dir)]
    assert stored == (uploads_dir / doc.storage_key).read_bytes()
    assert stored.startswith(b"odim-file-v1:") and b"%PDF" not in stored
    assert onboarding.open_document(doc.storage_key, stored) == PDF
    assert payload["application"]["progress"] == {"completedSteps": ["BUSINESS"], "lastStep": "documents"}


async def test_files_that_are_not_pdf_jpeg_or_png_by_their_bytes_are_refused_and_nothing_is_stored(
        api_client, uploads_dir):
    # given
    user, token = await applicant()
    await save(api_client, token, "BUSINESS", business=BUSINESS)
    # when: an executable declared as a PDF, PNG bytes declared as JPEG, an empty file
    refused = [
        await upload(api_client, token, "ID_CARD", EXE, filename="id.pdf", content_type="application/pdf"),
        await upload(api_client, token, "ID_CARD", PNG, filename="id.jpg", content_type="image/jpeg"),
        await upload(api_client, token, "ID_CARD", b"", filename="empty.pdf", content_type="application/pdf"),
    ]
    # then
    assert [r.json()["data"]["uploadApplicationDocument"]["errors"] for r in refused] == [
        [{"field": "file", "code": "UNSUPPORTED_FILE_TYPE",
          "message": "Only PDF, JPEG and PNG files are accepted (checked from the file's contents)"}],
        [{"field": "file", "code": "UNSUPPORTED_FILE_TYPE",
          "message": "The file says it is image/jpeg but its contents are image/png"}],
        [{"field": "file", "code": "UNSUPPORTED_FILE_TYPE",
          "message": "Only PDF, JPEG and PNG files are accepted (checked from the file's contents)"}],
    ]
    assert await rows(ApplicationDocument) == []
    assert stored_files(uploads_dir) == []


async def test_a_png_declared_as_octet_stream_is_accepted_with_its_detected_type(api_client, uploads_dir):
    # given
    user, token = await applicant()
    # when
    r = await upload(api_client, token, "CERTIFICATE", PNG, filename="diploma.png", content_type="application/octet-stream")
    # then: a draft was started for the upload; the stored type is the one the bytes say
    payload = r.json()["data"]["uploadApplicationDocument"]
    assert payload["errors"] == []
    assert payload["document"]["contentType"] == "image/png"
    assert payload["application"]["status"] == "DRAFT"


async def test_a_file_over_the_size_limit_is_refused_and_nothing_is_stored(api_client, uploads_dir, monkeypatch):
    # given: a 1,000-byte document limit, 2,000-byte JSON bodies: multipart requests may be 1,000 + 64 KiB
    monkeypatch.setattr(get_settings(), "upload_max_bytes", 1000)
    monkeypatch.setattr(get_settings(), "max_request_body_bytes", 2000)
    user, token = await applicant()
    await save(api_client, token, "BUSINESS", business=BUSINESS)
    just_right = PDF + b" " * (1000 - len(PDF))
    # when: 1,001 bytes (within the multipart room: the resolver refuses it), then far beyond the room (413)
    over = await upload(api_client, token, "ID_CARD", just_right + b" ")
    huge = await upload(api_client, token, "ID_CARD", just_right * 200)
    ok = await upload(api_client, token, "ID_CARD", just_right)
    # then
    assert over.json()["data"]["uploadApplicationDocument"]["errors"] == [
        {"field": "file", "code": "FILE_TOO_LARGE", "message": "The file is larger than 1000 bytes"}]
    assert huge.status_code == 413
    assert error_codes(huge.json()) == ["REQUEST_TOO_LARGE"]
    assert ok.json()["data"]["uploadApplicationDocument"]["errors"] == []
    assert [d.size_bytes for d in await rows(ApplicationDocument)] == [1000]
    # on disk: the 1,000 bytes sealed (magic, key id, nonce and tag added)
    overhead = len(b"odim-file-v1:") + len(get_settings().encryption_key_id) + 1 + 12 + 16
    assert [p.stat().st_size for p in stored_files(uploads_dir)] == [1000 + overhead]


async def test_an_upload_larger_than_the_json_body_limit_passes_as_multipart_but_json_does_not(api_client, uploads_dir):
    # given: the default limits (1 MiB JSON bodies, 10 MiB documents) and a 3 MiB scan
    user, token = await applicant()
    scan = PDF + b"0" * (3 * 1024 * 1024)
    # when
    multipart = await upload(api_client, token, "ID_CARD", scan)
    as_json = await api_client.post("/graphql", headers={"Authorization": f"Bearer {token}"},
                                    json={"query": MINE, "variables": {"pad": "0" * (2 * 1024 * 1024)}})
    # then
    assert multipart.json()["data"]["uploadApplicationDocument"]["document"]["sizeBytes"] == len(scan)
    assert as_json.status_code == 413
    assert [onboarding.open_document(p.relative_to(uploads_dir).as_posix(), p.read_bytes()) == scan
            for p in stored_files(uploads_dir)] == [True]


async def test_an_upload_without_a_multipart_file_is_a_typed_error(api_client, uploads_dir):
    # given
    user, token = await applicant()
    # when: a JSON request with text in the Upload variable
    body = await gql(api_client, UPLOAD, {"input": {"kind": "ID_CARD", "file": "not-a-file"}}, token=token)
    # then
    assert body["data"]["uploadApplicationDocument"]["errors"] == [
        {"field": "file", "code": "UNSUPPORTED_FILE_TYPE",
         "message": "`file` must be a file sent with the GraphQL multipart request spec"}]
    assert await rows(ApplicationDocument) == []


async def test_removing_a_document_deletes_its_row_and_file_and_nobody_else_can(api_client, uploads_dir):
    # given: Ada's document, and Eve
    user, token = await applicant()
    doc_id = (await upload(api_client, token, "ID_CARD", JPEG, content_type="image/jpeg")).json()[
        "data"]["uploadApplicationDocument"]["document"]["id"]
    eve = await token_for(await make_user("eve@example.cm"))
    # when
    by_eve = await gql(api_client, REMOVE, {"input": {"documentId": doc_id}}, token=eve)
    files_after_eve = stored_files(uploads_dir)
    by_ada = await gql(api_client, REMOVE, {"input": {"documentId": doc_id}}, token=token)
    # then
    assert by_eve["data"]["removeApplicationDocument"]["errors"] == [
        {"field": "documentId", "code": "NOT_FOUND", "message": "No such document of yours"}]
    assert len(files_after_eve) == 1
    assert by_ada["data"]["removeApplicationDocument"] == {"application": {"documents": []}, "errors": []}
    assert await rows(ApplicationDocument) == []
    assert stored_files(uploads_dir) == []


async def test_uploads_go_to_s3_when_the_backend_is_s3(api_client, uploads_dir, monkeypatch, moto_endpoint, bucket):
    # given: the S3 backend on a local moto server
    import boto3

    s = get_settings()
    monkeypatch.setattr(s, "storage_backend", "s3")
    monkeypatch.setattr(s, "storage_s3_endpoint_url", moto_endpoint)
    monkeypatch.setattr(s, "storage_s3_bucket", bucket)
    from pydantic import SecretStr
    monkeypatch.setattr(s, "storage_s3_access_key_id", SecretStr("testing"))
    monkeypatch.setattr(s, "storage_s3_secret_access_key", SecretStr("testing"))
    user, token = await applicant()
    # when
    r = await upload(api_client, token, "ID_CARD", PDF)
    # then: in the bucket, not on disk
    assert r.json()["data"]["uploadApplicationDocument"]["errors"] == []
    [doc] = await rows(ApplicationDocument)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    in_bucket = client.get_object(Bucket=bucket, Key=doc.storage_key)["Body"].read()
    assert b"%PDF" not in in_bucket and onboarding.open_document(doc.storage_key, in_bucket) == PDF
    assert stored_files(uploads_dir) == []


# --- steps, progress, submission -------------------------------------------------------------------

async def test_progress_is_resumed_on_another_device_by_a_new_sign_in(api_client):
    # given: two sign-ins of the same account (phone and laptop)
    user, phone_token = await applicant()
    laptop_token = await token_for(user)
    assert phone_token != laptop_token
    # when: the phone saves two steps; the laptop reads
    await save(api_client, phone_token, "BUSINESS", business=BUSINESS)
    await save(api_client, phone_token, "CATEGORIES", categories=["Plumbing", "drains", "plumbing"])
    mine = (await gql(api_client, MINE, token=laptop_token))["data"]["myProviderApplication"]
    # then
    assert mine["status"] == "DRAFT"
    assert mine["progress"] == {"completedSteps": ["BUSINESS", "CATEGORIES"], "lastStep": "categories"}
    assert (mine["businessName"], mine["phone"], mine["address"], mine["countryCode"]) == (
        "Eko Plumbing SARL", "+237671234567", "12 Rue Joss, Bonanjo", "CM")
    assert mine["categories"] == ["plumbing", "drains"]
    # and the phone and address are encrypted at rest
    async with session_scope() as s:
        from sqlalchemy import text
        raw = (await s.execute(text("SELECT phone, address FROM provider_applications"))).one()
    assert raw.phone.startswith("v1:") and raw.address.startswith("v1:")


async def test_two_devices_saving_a_first_step_at_once_share_one_application():
    # given: a new applicant with no application; its phone's first save has created the draft
    # and not yet committed
    user, _ = await applicant()
    async with session_scope() as phone:
        first = await onboarding.save_step(phone, user.id, "business", business=onboarding.BusinessDetails(
            business_name="Eko Plumbing SARL", phone="+237671234567", address="12 Rue Joss", city="Douala",
            country_code="CM", registration_number=None))

        # when: the laptop saves its first step meanwhile
        async def laptop() -> int:
            async with session_scope() as s:
                return (await onboarding.save_step(s, user.id, "categories", categories=["plumbing"])).id

        second = asyncio.create_task(laptop())
        await asyncio.sleep(0.5)
        waited = not second.done()
    # then: the laptop waited for the phone's commit, then saved into the same application
    # (without the lock it broke the one-open-application index: IntegrityError)
    assert waited
    assert await second == first.id
    async with session_scope() as s:
        apps = (await s.scalars(select(ProviderApplication).where(ProviderApplication.user_id == user.id))).all()
    assert len(apps) == 1
    assert sorted(apps[0].progress["completedSteps"]) == ["business", "categories"]


async def test_an_applicants_data_export_holds_its_application_and_its_documents_names(api_client):
    # given: a submitted application with two documents
    user, token = await applicant()
    await complete_application(api_client, token)
    # when
    data = (await gql(api_client, "query { myDataExport }", token=token))["data"]["myDataExport"]
    # then: the business details decrypted, the documents described (not inlined)
    [app] = data["providerApplications"]
    assert (app["status"], app["businessName"], app["phone"], app["address"], app["categories"]) == (
        "submitted", "Eko Plumbing SARL", "+237671234567", "12 Rue Joss, Bonanjo", ["plumbing", "drains"])
    assert [(d["kind"], d["contentType"], d["sha256"]) for d in app["documents"]] == [
        ("id_card", "image/jpeg", hashlib.sha256(JPEG).hexdigest()),
        ("business_registration", "application/pdf", hashlib.sha256(PDF).hexdigest()),
    ]


async def test_a_polygon_service_area_is_stored_with_a_point_inside_it(api_client):
    # given
    user, token = await applicant()
    square = [{"latitude": 4.0, "longitude": 9.7}, {"latitude": 4.0, "longitude": 9.8},
              {"latitude": 4.1, "longitude": 9.8}, {"latitude": 4.1, "longitude": 9.7}]
    bowtie = [{"latitude": 4.0, "longitude": 9.7}, {"latitude": 4.1, "longitude": 9.8},
              {"latitude": 4.0, "longitude": 9.8}, {"latitude": 4.1, "longitude": 9.7}]
    # when
    bad = await save(api_client, token, "SERVICE_AREA", serviceArea={"polygon": bowtie})
    both = await save(api_client, token, "SERVICE_AREA", serviceArea={"polygon": square, "center": DOUALA, "radiusKm": 5})
    good = await save(api_client, token, "SERVICE_AREA", serviceArea={"polygon": square})
    # then
    assert bad["errors"] == [{"field": "serviceArea", "code": "INVALID_SERVICE_AREA",
                              "message": "The polygon crosses itself or has no area"}]
    assert [e["code"] for e in both["errors"]] == ["INVALID_SERVICE_AREA"]
    area = good["application"]["serviceArea"]
    assert area["radiusKm"] is None
    assert len(area["polygon"]) == 5 and area["polygon"][0] == area["polygon"][-1]
    assert area["center"]["latitude"] == pytest.approx(4.05, abs=1e-3)
    assert area["center"]["longitude"] == pytest.approx(9.75, abs=1e-3)


async def test_bad_step_input_is_a_typed_error_and_changes_nothing(api_client):
    # given: a saved business step
    user, token = await applicant()
    await save(api_client, token, "BUSINESS", business=BUSINESS)
    # when
    results = [
        await save(api_client, token, "BUSINESS", business={**BUSINESS, "phone": "12"}),
        await save(api_client, token, "CATEGORIES", categories=[]),
        await save(api_client, token, "CATEGORIES"),
        await save(api_client, token, "SERVICE_AREA", serviceArea={"center": DOUALA, "radiusKm": 150}),
    ]
    # then
    assert [[(e["field"], e["code"]) for e in r["errors"]] for r in results] == [
        [("business.phone", "INVALID_PHONE")], [("categories", "INVALID_CATEGORY")],
        [("categories", "MISSING_FIELD")], [("serviceArea.radiusKm", "INVALID_SERVICE_AREA")]]
    [app] = await rows(ProviderApplication)
    assert (app.phone, app.categories, app.service_point) == ("+237671234567", [], None)
    assert app.progress == {"completedSteps": ["business"], "lastStep": "business"}


async def test_submitting_an_incomplete_application_lists_every_gap_and_changes_nothing(api_client):
    # given: only the business step
    user, token = await applicant()
    await save(api_client, token, "BUSINESS", business=BUSINESS)
    # when
    body = await gql(api_client, SUBMIT, {"input": {}}, token=token)
    # then
    assert body["data"]["submitProviderApplication"] == {"application": None, "errors": [
        {"field": "categories", "code": "MISSING_CATEGORIES", "message": "Choose at least one category"},
        {"field": "serviceArea", "code": "MISSING_SERVICE_AREA", "message": "The service area is missing"},
        {"field": "documents.id_card", "code": "MISSING_DOCUMENT", "message": "Upload your ID card"},
        {"field": "documents.business_registration", "code": "MISSING_DOCUMENT",
         "message": "Upload your Business registration"},
    ]}
    [app] = await rows(ProviderApplication)
    assert (app.status, app.submitted_at) == ("draft", None)
    assert await rows(AuditEntry, AuditEntry.action.like("provider_application.%")) == []


async def test_a_submitted_application_is_locked_for_the_applicant(api_client):
    # given
    user, token = await applicant()
    await complete_application(api_client, token)
    # when
    edit = await save(api_client, token, "CATEGORIES", categories=["painting"])
    again = await gql(api_client, SUBMIT, {"input": {}}, token=token)
    # then
    assert [e["code"] for e in edit["errors"]] == ["APPLICATION_LOCKED"]
    assert [e["code"] for e in again["data"]["submitProviderApplication"]["errors"]] == ["APPLICATION_LOCKED"]
    [app] = await rows(ProviderApplication)
    assert (app.status, app.categories) == ("submitted", ["plumbing", "drains"])


# --- the admin queue and decisions -----------------------------------------------------------------

async def test_the_admin_queue_lists_submitted_applications_oldest_first_in_pages(api_client):
    # given: three submitted applications, one draft
    tokens = []
    for i in range(3):
        user, token = await applicant(f"applicant{i}@example.cm")
        await complete_application(api_client, token)
        tokens.append(token)
    await save(api_client, (await applicant("draft@example.cm"))[1], "BUSINESS", business=BUSINESS)
    admin = await admin_token()
    # when
    with count_statements() as statements:
        first = (await gql(api_client, QUEUE, {"first": 2}, token=admin))["data"]["providerApplications"]
    second = (await gql(api_client, QUEUE, {"first": 2, "after": first["pageInfo"]["endCursor"]},
                        token=admin))["data"]["providerApplications"]
    drafts = (await gql(api_client, QUEUE, {"status": "DRAFT"}, token=admin))["data"]["providerApplications"]
    # then
    ids = [a.id for a in await rows(ProviderApplication, ProviderApplication.status == "submitted")]
    assert [e["node"]["id"] for e in first["edges"] + second["edges"]] == [
        encode_id("ProviderApplication", i) for i in ids]
    assert first["pageInfo"]["hasNextPage"] is True and second["pageInfo"]["hasNextPage"] is False
    assert [len(e["node"]["documents"]) for e in first["edges"]] == [2, 2]
    assert [e["node"]["status"] for e in drafts["edges"]] == ["DRAFT"]
    # viewer (1), applications page (1), their documents (1)
    assert len(statements) == 3, statements


async def test_an_admin_approves_an_application_audited_and_emailed(api_client, mailbox, invalidations):
    # given
    user, token = await applicant()
    app = await complete_application(api_client, token)
    admin = await admin_token()
    # when
    body = await gql(api_client, APPROVE, {"input": {"applicationId": app["id"]}}, token=admin)
    await deliver()
    # then: a verified provider where the area is, in the categories, and the account is a provider
    payload = body["data"]["approveProviderApplication"]
    assert payload["errors"] == []
    assert payload["application"]["status"] == "APPROVED"
    [provider] = await rows(Provider)
    assert payload["application"]["providerId"] == encode_id("Provider", provider.id)
    assert (provider.user_id, provider.display_name, provider.verified, provider.suspended) == (
        user.id, "Eko Plumbing SARL", True, False)
    assert (provider.categories, provider.city, provider.country_code, provider.phone, provider.service_radius_km) == (
        ["plumbing", "drains"], "Douala", "CM", "+237671234567", 15.0)
    [account] = await rows(User, User.id == user.id)
    assert account.role == "provider"
    assert invalidations == [provider.id]  # the discovery cache of its area, after commit
    # audited twice: the admin mutation (schema extension) and the domain decision
    actions = [(e.action, e.subject_type, e.details) for e in await rows(AuditEntry) if e.action != "provider_application.submitted"]
    app_id = (await rows(ProviderApplication))[0].id
    assert actions == [
        ("provider_application.approved", "ProviderApplication",
         {"decision": "approved", "applicationId": app_id, "providerId": provider.id, "userId": user.id}),
        ("admin.approveProviderApplication", "ProviderApplication",
         {"input": {"input.applicationId": app["id"]}, "errorCodes": []}),
    ]
    [mail] = mailbox()
    assert mail["To"] == "ada@example.cm"
    assert str(mail["Subject"]) == "Odim: your provider application for Eko Plumbing SARL is approved"


async def test_an_admin_rejects_with_a_reason_only(api_client, mailbox):
    # given
    user, token = await applicant()
    app = await complete_application(api_client, token)
    admin = await admin_token()
    # when
    blank = await gql(api_client, REJECT, {"input": {"applicationId": app["id"], "reason": "   "}}, token=admin)
    after_blank = await rows(ProviderApplication)
    done = await gql(api_client, REJECT, {"input": {"applicationId": app["id"], "reason": "The registration number "
                                                    "does not match the registry."}}, token=admin)
    await deliver()
    # then
    assert blank["data"]["rejectProviderApplication"]["errors"] == [
        {"field": "reason", "code": "REASON_REQUIRED", "message": "Say why the application is rejected (the applicant "
                                                                  "reads it)"}]
    assert after_blank[0].status == "submitted"
    payload = done["data"]["rejectProviderApplication"]
    assert (payload["errors"], payload["application"]["status"], payload["application"]["decisionReason"]) == (
        [], "REJECTED", "The registration number does not match the registry.")
    assert await rows(Provider) == []
    assert [e.details["decision"] for e in await rows(AuditEntry, AuditEntry.action == "provider_application.rejected")] \
        == ["rejected"]
    [mail] = mailbox()
    assert "The registration number does not match the registry." in mail.get_body(("plain",)).get_content()
    # and the rejected applicant may start again
    assert (await save(api_client, token, "BUSINESS", business=BUSINESS))["application"]["status"] == "DRAFT"
    assert len(await rows(ProviderApplication)) == 2


async def test_an_admin_requests_more_documents_and_the_applicant_resubmits(api_client, mailbox):
    # given
    user, token = await applicant()
    app = await complete_application(api_client, token)
    admin = await admin_token()
    # when: the admin asks for a certificate and a new ID card
    asked = await gql(api_client, REQUEST_DOCS, {"input": {"applicationId": app["id"], "kinds": ["CERTIFICATE", "ID_CARD"],
                                                           "message": "Your ID card photo is blurred."}}, token=admin)
    await deliver()
    too_early = await gql(api_client, SUBMIT, {"input": {}}, token=token)
    await upload(api_client, token, "CERTIFICATE", PNG, content_type="image/png")
    await upload(api_client, token, "ID_CARD", JPEG, content_type="image/jpeg")
    resubmitted = await gql(api_client, SUBMIT, {"input": {}}, token=token)
    # then
    payload = asked["data"]["requestApplicationDocuments"]
    assert payload["errors"] == []
    assert (payload["application"]["status"], payload["application"]["requestedDocumentKinds"]) == (
        "MORE_DOCUMENTS_REQUESTED", ["CERTIFICATE", "ID_CARD"])
    assert [(e["field"], e["code"]) for e in too_early["data"]["submitProviderApplication"]["errors"]] == [
        ("documents.certificate", "MISSING_DOCUMENT"), ("documents.id_card", "MISSING_DOCUMENT")]
    assert resubmitted["data"]["submitProviderApplication"]["application"]["status"] == "SUBMITTED"
    [mail] = mailbox()
    text_body = mail.get_body(("plain",)).get_content()
    assert str(mail["Subject"]) == "Odim: more documents needed for Eko Plumbing SARL"
    assert "- Certificate (qualification, licence, insurance)" in text_body and "Your ID card photo is blurred." in text_body
    assert [e.details for e in await rows(AuditEntry, AuditEntry.action == "provider_application.documents_requested")] \
        == [{"decision": "more_documents_requested", "applicationId": (await rows(ProviderApplication))[0].id,
             "kinds": ["certificate", "id_card"], "userId": user.id}]


async def test_non_admins_cannot_see_the_queue_or_decide_and_nothing_changes(api_client, mailbox):
    # given: a submitted application; its applicant and a provider try the admin fields
    user, token = await applicant()
    app = await complete_application(api_client, token)
    provider_user = await make_user("p@example.cm", role="provider")
    other = await token_for(provider_user)
    # when
    bodies = [
        await gql(api_client, QUEUE, {}, token=token),
        await gql(api_client, APPROVE, {"input": {"applicationId": app["id"]}}, token=token),
        await gql(api_client, REJECT, {"input": {"applicationId": app["id"], "reason": "x"}}, token=other),
        await gql(api_client, REQUEST_DOCS, {"input": {"applicationId": app["id"], "kinds": ["ID_CARD"], "message": "x"}},
                  token=other),
        await gql(api_client, APPROVE, {"input": {"applicationId": app["id"]}}),
    ]
    await deliver()
    # then
    assert [error_codes(b) for b in bodies] == [["FORBIDDEN"]] * 4 + [["UNAUTHENTICATED"]]
    [row] = await rows(ProviderApplication)
    assert (row.status, row.decided_at) == ("submitted", None)
    assert await rows(Provider) == []
    assert mailbox() == []
    assert await rows(Email) == []


async def test_an_admin_downloads_a_document_and_nobody_else_can(api_client):
    # given
    user, token = await applicant()
    app = await complete_application(api_client, token)
    doc = next(d for d in app["documents"] if d["kind"] == "BUSINESS_REGISTRATION")
    admin = await admin_token()
    # when
    got = await api_client.get(doc["downloadPath"], headers={"Authorization": f"Bearer {admin}"})
    by_applicant = await api_client.get(doc["downloadPath"], headers={"Authorization": f"Bearer {token}"})
    anonymous = await api_client.get(doc["downloadPath"])
    missing = await api_client.get("/admin/application-documents/999999", headers={"Authorization": f"Bearer {admin}"})
    # then
    assert got.status_code == 200
    assert got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["cache-control"] == "no-store"
    doc_id = decode_id(doc["id"], "ApplicationDocument", field="id")
    assert got.headers["content-disposition"] == f'attachment; filename="business_registration-{doc_id}.pdf"'
    assert (by_applicant.status_code, anonymous.status_code, missing.status_code) == (403, 401, 404)
    downloads = await rows(AuditEntry, AuditEntry.action == "admin.downloadApplicationDocument")
    denials = await rows(AuditEntry, AuditEntry.action == "authz.denied")
    assert len(downloads) == 1 and len(denials) == 2


async def test_a_tampered_file_is_refused_and_a_file_stored_before_encryption_is_served_as_it_is(api_client, uploads_dir):
    # given: two documents on disk; one file altered by one byte, the other replaced by its plain
    # bytes (as files stored before encryption at rest were)
    user, token = await applicant()
    app = await complete_application(api_client, token)
    card, registration = (next(d for d in app["documents"] if d["kind"] == kind)
                          for kind in ("ID_CARD", "BUSINESS_REGISTRATION"))
    rows_by_kind = {d.kind: d for d in await rows(ApplicationDocument)}
    tampered = uploads_dir / rows_by_kind["id_card"].storage_key
    sealed = bytearray(tampered.read_bytes())
    sealed[-1] ^= 1
    tampered.write_bytes(bytes(sealed))
    (uploads_dir / rows_by_kind["business_registration"].storage_key).write_bytes(PDF)
    admin = {"Authorization": f"Bearer {await admin_token()}"}
    # when
    refused = await api_client.get(card["downloadPath"], headers=admin)
    legacy = await api_client.get(registration["downloadPath"], headers=admin)
    # then
    assert (refused.status_code, refused.json()["code"]) == (500, "DOCUMENT_UNREADABLE")
    assert (legacy.status_code, legacy.content) == (200, PDF)


async def test_key_rotation_reseals_document_files_and_seals_files_stored_in_plain(api_client, uploads_dir, monkeypatch):
    import base64

    from sqlalchemy import update

    from domain.operations import privacy

    # given: two documents sealed under the current key, one of them put back in plain with no key on
    # its row (as files stored before encryption at rest, migration 0015)
    user, token = await applicant()
    await complete_application(api_client, token)
    docs = {d.kind: d for d in await rows(ApplicationDocument)}
    home = get_settings().encryption_key_id
    assert {d.file_key_id for d in docs.values()} == {home}
    legacy = docs["business_registration"]
    (uploads_dir / legacy.storage_key).write_bytes(PDF)
    async with session_scope() as s:
        await s.execute(update(ApplicationDocument).where(ApplicationDocument.id == legacy.id).values(file_key_id=None))
    assert (await privacy.key_ids_in_use())[privacy.FILES] == {home: 1, "plain": 1}
    # when: a new key becomes current and `odim keys rotate` runs (one document per transaction)
    keys = {k: v.get_secret_value() for k, v in get_settings().encryption_keys.items()}
    monkeypatch.setenv("ODIM_ENCRYPTION_KEYS", json.dumps({**keys, "k2": base64.b64encode(b"2" * 32).decode()}))
    monkeypatch.setenv("ODIM_ENCRYPTION_KEY_ID", "k2")
    get_settings.cache_clear()
    try:
        monkeypatch.setattr(get_settings(), "storage_backend", "local")
        monkeypatch.setattr(get_settings(), "storage_local_dir", uploads_dir)
        report = await privacy.rotate_keys(batch_size=1)
        # then: both files are sealed under k2, their rows say so, and they open to what was uploaded
        assert (report.columns[privacy.FILES].rotated, report.columns[privacy.FILES].failed) == (2, 0)
        assert (await privacy.key_ids_in_use())[privacy.FILES] == {"k2": 2}
        for kind, original in (("id_card", JPEG), ("business_registration", PDF)):
            stored = (uploads_dir / docs[kind].storage_key).read_bytes()
            assert stored.startswith(b"odim-file-v1:k2:")
            assert onboarding.open_document(docs[kind].storage_key, stored) == original
        # and a second run finds nothing left to do
        assert (await privacy.rotate_keys(batch_size=1)).columns[privacy.FILES].rotated == 0
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


# --- only approved providers are found or assigned -------------------------------------------------

async def test_an_applicants_provider_is_found_and_assignable_only_after_approval(api_client, shop):
    # given: an account with an unverified provider profile (as imported data has), applying
    user, token = await applicant()
    old = await make_provider(verified=False, user_id=user.id, display_name="Old name", categories=["painting"])
    customer = await make_user("cust@example.cm")
    request = await domain_purchase(shop, customer)
    await pay(request.id)
    admin = await admin_token()
    app = await complete_application(api_client, token)
    assign = {"input": {"serviceRequestId": encode_id("ServiceRequest", request.id),
                        "providerId": encode_id("Provider", old.id)}}
    # when: before approval
    found_before = await gql(api_client, NEARBY, {"near": DOUALA})
    assigned_before = await gql(api_client, ASSIGN, assign, token=admin)
    # and after
    await gql(api_client, APPROVE, {"input": {"applicationId": app["id"]}}, token=admin)
    found_after = await gql(api_client, NEARBY, {"near": DOUALA})
    assigned_after = await gql(api_client, ASSIGN, assign, token=admin)
    # then
    assert found_before["data"]["providersNearby"]["edges"] == []
    assert [e["code"] for e in assigned_before["data"]["assignProvider"]["errors"]] == ["PROVIDER_NOT_ASSIGNABLE"]
    assert found_after["data"]["providersNearby"]["edges"] == [
        {"node": {"provider": {"id": encode_id("Provider", old.id), "displayName": "Eko Plumbing SARL"}}}]
    assert assigned_after["data"]["assignProvider"]["errors"] == []
    [provider] = await rows(Provider)
    assert (provider.id, provider.categories, provider.verified) == (old.id, ["plumbing", "drains"], True)


async def test_operators_and_approved_providers_cannot_apply(api_client):
    # given
    admin = await admin_token()
    provider_user = await make_user("p@example.cm", role="provider")
    await make_provider(user_id=provider_user.id)
    # when
    by_admin = await gql(api_client, SAVE, {"input": {"step": "CATEGORIES", "categories": ["x"]}}, token=admin)
    by_provider = await save(api_client, await token_for(provider_user), "CATEGORIES", categories=["x"])
    # then
    assert error_codes(by_admin) == ["FORBIDDEN"]
    assert by_provider["errors"] == [{"field": None, "code": "ALREADY_A_PROVIDER",
                                      "message": "This account is already an approved provider"}]
    assert await rows(ProviderApplication) == []


# --- erasure ------------------------------------------------------------------------------------------

ERASE = """mutation($input: DeleteMyAccountInput!) { deleteMyAccount(input: $input) { errors { code } } }"""


async def test_erasing_an_applicant_deletes_its_documents_and_blanks_its_application(api_client, uploads_dir):
    # given a customer with a submitted application and two stored documents
    user, token = await applicant()
    await complete_application(api_client, token)
    assert len(stored_files(uploads_dir)) == 2
    # when the customer erases her account
    body = await gql(api_client, ERASE, {"input": {"password": "correct-horse-battery"}}, token=token)
    assert body["data"]["deleteMyAccount"]["errors"] == []
    # then the documents' rows and files are gone and the application keeps no personal field
    assert await rows(ApplicationDocument) == [] and stored_files(uploads_dir) == []
    [app] = await rows(ProviderApplication)
    assert (app.business_name, app.registration_number, app.phone, app.address) == (None, None, None, None)
    [erased] = await rows(AuditEntry, AuditEntry.action == "privacy.account.deleted")
    assert erased.details["documents"] == 2
