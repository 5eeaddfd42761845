use super::*;

fn t(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant")
}

#[test]
fn an_issued_key_has_its_id_and_256_bits_of_secret_and_only_its_hash_is_kept() {
    let a = issue(t("acme"), Role::Tenant, 5);
    let b = issue(t("acme"), Role::Tenant, 5);
    use secrecy::ExposeSecret;
    let key = a.key.expose_secret();
    assert!(key.starts_with(PREFIX), "{key}");
    assert_eq!(key.len(), PREFIX.len() + ID_LEN + 1 + SECRET_LEN);
    assert_eq!(id_of(key), Some(a.record.id.clone()));
    assert_ne!(a.record.id, b.record.id);
    assert_ne!(a.key.expose_secret(), b.key.expose_secret());
    assert!(a.record.sha256.matches(&KeyHash::of(key)));
    assert!(!a.record.sha256.matches(&KeyHash::of(b.key.expose_secret())));
    let shown = serde_json::to_string(&a.record).expect("json");
    assert!(!shown.contains(&a.record.sha256.to_hex()) && !shown.contains(&key[20..]), "{shown}");
    assert!(!format!("{:?}", a.record).contains(&a.record.sha256.to_hex()));
}

#[test]
fn only_the_issued_form_names_an_id() {
    let hex64 = "ab".repeat(32);
    assert_eq!(id_of(&format!("gk_0123456789ab_{hex64}")).map(String::from), Some("0123456789ab".into()));
    for bad in [
        String::new(),
        "gk_".into(),
        format!("gk_0123456789a_{hex64}"),
        format!("gk_0123456789ab_{}", &hex64[1..]),
        format!("xx_0123456789ab_{hex64}"),
        format!("gk_0123456789zz_{hex64}"),
    ] {
        assert_eq!(id_of(&bad), None, "{bad}");
    }
}

#[test]
fn hashes_round_trip_through_hex() {
    let h = KeyHash::of("gk_x");
    assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h.clone()));
    assert_eq!(KeyHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
    assert_eq!(KeyHash::from_hex("abc"), None);
    assert_eq!(KeyHash::from_hex(&"g".repeat(64)), None);
    // The SHA-256 of "abc" (FIPS 180-2 test vector).
    assert_eq!(KeyHash::of("abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

async fn store_contract(store: KeyStore) {
    use secrecy::ExposeSecret;
    let a = issue(t("acme"), Role::Tenant, 10);
    let admin = issue(t("ops"), Role::Admin, 20);
    store.create(&a.record).await.expect("create");
    store.create(&admin.record).await.expect("create");
    assert!(matches!(store.create(&a.record).await, Err(KeyStoreError::Exists(_))));
    assert_eq!(store.verify(a.key.expose_secret()).await.expect("verify"), Verified::Valid(a.record.clone()));
    // The right id with another secret is unknown, as is anything not of the issued form.
    let forged = format!("{PREFIX}{}_{}", a.record.id, "0".repeat(SECRET_LEN));
    assert_eq!(store.verify(&forged).await.expect("verify"), Verified::Unknown);
    assert_eq!(store.verify("nope").await.expect("verify"), Verified::Unknown);
    let listed = store.list().await.expect("list");
    assert_eq!(
        listed.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        vec![a.record.id.clone(), admin.record.id.clone()]
    );
    assert_eq!(listed[1].role, Role::Admin);
    let Revoked::Now(r) = store.revoke(&a.record.id, 30).await.expect("revoke") else { panic!("revoked now") };
    assert_eq!(r.revoked_at, Some(30));
    let Revoked::Already(r) = store.revoke(&a.record.id, 40).await.expect("revoke") else { panic!("already") };
    assert_eq!(r.revoked_at, Some(30), "the first revocation time is kept");
    assert!(matches!(store.verify(a.key.expose_secret()).await.expect("verify"), Verified::Revoked(_)));
    let unknown = KeyId::parse("ffffffffffff").expect("id");
    assert_eq!(store.revoke(&unknown, 1).await.expect("revoke"), Revoked::Unknown);
    assert_eq!(store.get(&unknown).await.expect("get"), None);
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    store_contract(KeyStore::for_bus(&Bus::Memory(crate::bus::memory::MemoryBus::new()))).await;
}

#[tokio::test]
async fn the_redis_store_keeps_the_contract() {
    let server = genesis_testkit::RedisServer::start();
    let backoff = crate::policy::backoff::Backoff::new(
        std::time::Duration::from_millis(20),
        std::time::Duration::from_millis(500),
        2.0,
    );
    let bus = crate::bus::redis::RedisBus::connect(&server.url(), backoff).await.expect("connect");
    store_contract(KeyStore::for_bus(&Bus::Redis(bus))).await;
}
