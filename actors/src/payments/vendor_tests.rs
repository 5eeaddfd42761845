use super::*;

fn wl() -> Whitelist {
    let entries: Vec<String> =
        ["openai.com", "anthropic.com", "stripe.com", "vercel.com", "namecheap.com", "cloudflare.com"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    Whitelist::new(&entries).unwrap_or_default()
}

/// Full path an intent's vendor takes: normalization against the whitelist, then the whitelist check.
fn verdict(raw: &str) -> Result<String, &'static str> {
    let w = wl();
    let host = normalize_for(raw, &w).map_err(|r| r.code)?;
    w.check(&host).map_err(|r| r.code)?;
    Ok(host.as_str().to_owned())
}

#[test]
fn normalization_table() {
    let ok = [
        ("openai.com", "openai.com"),
        ("https://API.OpenAI.com:443/v1?x", "api.openai.com"),
        ("  Stripe.COM.  ", "stripe.com"),
        ("http://user:pw@vercel.com:8080/path#frag", "vercel.com"),
        ("//cloudflare.com/x", "cloudflare.com"),
        ("openai.com/redirect?u=https://evil.io", "openai.com"),
        ("openai.com:", "openai.com"),
        ("a-b.c0m", "a-b.c0m"),
        ("xn--penai-iye.com", "xn--penai-iye.com"),
    ];
    for (raw, want) in ok {
        assert_eq!(normalize(raw).map(|h| h.as_str().to_owned()), Ok(want.to_owned()), "{raw}");
    }
    let long_label = format!("{}.com", "a".repeat(64));
    let long_host = format!("{}.com", vec!["a".repeat(60); 5].join("."));
    let bad = [
        "",
        "   ",
        "localhost",
        "openai",
        "1.2.3.4",
        "http://127.0.0.1:80/",
        "[::1]",
        "http://[2001:db8::1]/",
        "open ai.com",
        "-openai.com",
        "openai-.com",
        "openai..com",
        ".openai.com",
        "openai.com:99999999",
        "openai.com:http",
        "open_ai.com",
        "оpenai.com",
        "https://",
        long_label.as_str(),
        long_host.as_str(),
    ];
    for raw in bad {
        assert_eq!(normalize(raw).map_err(|r| r.code), Err(code::INVALID_VENDOR), "{raw}");
    }
    assert_eq!(normalize(&"a".repeat(5000)).map_err(|r| r.code), Err(code::INVALID_VENDOR));
}

#[test]
fn whitelist_allows_entries_and_subdomains() {
    for raw in ["openai.com", "api.openai.com", "https://a.b.stripe.com/x", "VERCEL.com."] {
        assert!(verdict(raw).is_ok(), "{raw}");
    }
}

#[test]
fn lookalike_table() {
    let lookalikes = [
        "0penai.com",
        "openal.com",
        "opena1.com",
        "openai.co",
        "openai.net",
        "openai.com.evil.io",
        "openai-com.io",
        "login-openai.com",
        "vercel-billing.dev",
        "secure-0penai.help",
        "oppenai.com",
        "opeani.com",
        "penai.com",
        "stripe.com.attacker.net",
        "str1pe.com",
        "strlpe.com",
        "vvercel.com",
        "verceI.com",
        "anthroplc.com",
        "anthr0pic.io",
        "narnecheap.com",
        "c1oudflare.com",
        "cloudfare.com",
        "xn--penai-iye.com",
        "xn--strpe-1sa.com",
        "xn--nthropic-06g.com",
        "xn--n-8sbn9ak9k.com",
        "xn--garbage.openai.co",
        // non-ASCII: Cyrillic, Greek, accented, fullwidth, mixed scripts
        "оpenai.com",
        "ореnаі.com",
        "οpenai.com",
        "strípe.com",
        "ѕtripe.com",
        "https://ANTHROPİC.com/",
        "ｏｐｅｎａｉ.com",
        "openai。com",
        "api.оpenai.com",
        "vercеl.io",
    ];
    for raw in lookalikes {
        assert_eq!(verdict(raw), Err(code::VENDOR_LOOKALIKE), "{raw}");
    }
}

#[test]
fn lookalike_reason_names_the_imitated_vendor() {
    let w = wl();
    let host = normalize("0penai.com");
    let reason = host.map(|h| w.check(&h)).ok().and_then(Result::err).map(|r| r.reason);
    assert!(reason.as_deref().is_some_and(|r| r.contains("`openai.com`") && r.contains("0penai.com")), "{reason:?}");
    let reason = normalize_for("strípe.com", &w).err().map(|r| r.reason);
    assert!(reason.as_deref().is_some_and(|r| r.contains("`stripe.com`")), "{reason:?}");
}

#[test]
fn legit_vendors_are_not_lookalikes() {
    for raw in [
        "example.com",
        "github.com",
        "aws.amazon.com",
        "google.com",
        "api.mailgun.net",
        "pinstripe.org",
        "open.ai",
        "cloud.flare.net",
        "stripes-and-dots.com",
    ] {
        assert_eq!(verdict(raw), Err(code::VENDOR_NOT_WHITELISTED), "{raw}");
    }
}

#[test]
fn non_ascii_that_resembles_nothing_is_invalid() {
    let w = wl();
    for raw in ["пример.рф", "例子.com", "xn--e1afmkfd.xn--p1ai", "bücher.de"] {
        assert_eq!(normalize_for(raw, &w).map_err(|r| r.code), Err(code::INVALID_VENDOR), "{raw}");
    }
}

#[test]
fn whitelisted_punycode_entry_is_allowed() {
    let w = Whitelist::new(&["xn--bcher-kva.de".to_string()]).unwrap_or_default();
    assert!(normalize_for("xn--bcher-kva.de", &w).is_ok());
    assert!(normalize_for("shop.xn--bcher-kva.de", &w).is_ok());
    assert_eq!(normalize_for("bücher.de", &w).map_err(|r| r.code), Err(code::VENDOR_LOOKALIKE));
}

#[test]
fn whitelist_construction() {
    let w = Whitelist::new(&["https://OpenAI.com/".into(), "openai.com".into(), "stripe.com".into()]);
    assert_eq!(
        w.map(|w| w.hosts().map(str::to_owned).collect::<Vec<_>>()),
        Ok(vec!["openai.com".into(), "stripe.com".into()])
    );
    let err = Whitelist::new(&["openai.com".into(), "not a host".into()]);
    assert!(err.as_ref().is_err_and(|e| e.contains("`not a host`")), "{err:?}");
    assert!(Whitelist::new(&["оpenai.com".into()]).is_err());
    let brand = Whitelist::new(&["shop.vendor.co.uk".into()]).map(|w| w.entries[0].brand.clone());
    assert_eq!(brand.as_deref(), Ok("vendor"));
}

/// Punycode decoding is the `idna` crate's now; this keeps the cases the hand-written decoder had.
fn punycode_decode(label: &str) -> Option<String> {
    idna::punycode::decode_to_string(label)
}

#[test]
fn punycode_decoder() {
    assert_eq!(punycode_decode("penai-iye").as_deref(), Some("оpenai"));
    assert_eq!(punycode_decode("strpe-1sa").as_deref(), Some("strípe"));
    assert_eq!(punycode_decode("n-8sbn9ak9k").as_deref(), Some("ореnаі"));
    assert_eq!(punycode_decode("bcher-kva").as_deref(), Some("bücher"));
    assert_eq!(punycode_decode("e1afmkfd").as_deref(), Some("пример"));
    assert_eq!(punycode_decode("zzzzzzzzzzzzzzzzzzzzzzzzzzzz"), None);
    assert_eq!(punycode_decode("abc-!!"), None);
}

#[test]
fn edit_distance_and_fold() {
    let d1 = |a: &str, b: &str| within_one_edit(a.as_bytes(), b.as_bytes());
    assert!(d1("openai", "openai") && d1("openai", "oppenai") && d1("openai", "penai") && d1("openai", "opeani"));
    assert!(d1("openai", "openaj") && d1("openai", "openaix"));
    assert!(!d1("openai", "opnaie") && !d1("openai", "op") && !d1("stripe", "github"));
    assert_eq!(fold("0pena1"), "openal");
    assert_eq!(fold("rnicrosoft"), "mlcrosoft");
    assert_eq!(fold("vvercel"), "wercel");
}
