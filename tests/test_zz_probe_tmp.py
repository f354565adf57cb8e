import tests.test_service_request as t
def test_zz_print():
    print("\nCOVERED", len(t.COVERED), sorted(t.COVERED))
