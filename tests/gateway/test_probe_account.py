"""The probe's account is nobody's: no key is added to it, and a key naming it authenticates no one."""

from __future__ import annotations

import pytest

from gateway.accounts import KEY_PREFIX, hash_key
from schemas.ids import PROBE_ACCOUNT
from schemas.records import Tier
from schemas.view import ACCOUNTS, API_KEYS

pytestmark = pytest.mark.integration


def test_no_key_is_ever_added_to_the_probe_account(gateway):
    state = gateway.client.app.state.gateway
    with pytest.raises(ValueError, match="reserved for the end-to-end probe"):
        gateway.client.portal.call(state.accounts.add_key, PROBE_ACCOUNT)


def test_created_accounts_never_get_the_probe_id(gateway):
    assert gateway.account(Tier.FREE).account_id != PROBE_ACCOUNT


def test_a_key_naming_the_probe_account_is_401_over_http(gateway, mongo_db):
    api_key = KEY_PREFIX + "planted-by-hand-probe-key-000000000000000000"
    mongo_db[ACCOUNTS].insert_one({"_id": PROBE_ACCOUNT, "tier": "premium", "name": None, "created_at": 0})
    mongo_db[API_KEYS].insert_one(
        {"_id": hash_key(api_key), "key_id": "probe", "account_id": PROBE_ACCOUNT, "revoked": False}
    )
    headers = {"Authorization": f"Bearer {api_key}"}
    assert gateway.client.get("/v1/stories", headers=headers).status_code == 401
    assert gateway.client.post("/v1/stories", json={"story_text": "x"}, headers=headers).status_code == 401
