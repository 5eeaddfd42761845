//! Vendor host normalization, the vendor whitelist and look-alike detection.
//!
//! **Normalization** ([`normalize`]) accepts a bare host or a URL and keeps only the host: lowercase,
//! no scheme, userinfo, port, path, query, fragment or trailing dot. The result must be 1..=253 bytes of
//! at least two labels, each 1..=63 of `[a-z0-9-]` without a leading/trailing `-`, and the last label
//! (the TLD) must contain a letter, which rules out IPv4 literals (`1.2.3.4`); IPv6 literals fail on `[`/`:`.
//!
//! **Non-ASCII and punycode** hosts are never accepted as vendors. [`normalize_for`] maps them to an ASCII
//! *skeleton* (`xn--` labels decoded and the UTS 46 mapping applied by `idna`, then the Unicode UTS 39
//! confusables skeleton from `unicode-security`; characters still not ASCII are dropped) and refuses
//! with `vendor_lookalike` if the skeleton equals, is under, or resembles a whitelisted vendor, else
//! with `invalid_vendor`. An `xn--` host that is itself whitelisted (or a subdomain of an entry) is
//! accepted.
//!
//! **Whitelist**: a host is allowed iff it equals an entry or ends with `"." + entry`. A host that is not
//! allowed *resembles* an entry when some label of the host other than the last one is *similar* to the
//! entry's *brand*, or (brands of ≥ 5 characters) a `-`-separated token of such a label has the brand's
//! [`fold`]. The brand is the entry's longest label other than its last (ties: the rightmost), so `openai`
//! for `openai.com` and `vendor` for `vendor.co.uk`. A label is similar when its fold equals the brand's,
//! or when the brand's fold has ≥ 5 characters and the folds are at optimal-string-alignment distance
//! ≤ 1 (one insertion, deletion, substitution or adjacent swap). This catches `0penai.com`,
//! `openal.com`, `opena1.com`, `rnicrosoft`-style `rn`/`m` and `vv`/`w` swaps, `oppenai.com`,
//! `openai.co`, `openai.com.evil.io` and `openai-com.io`, and leaves `example.com` and `github.com` alone.

use super::types::{code, Rejection, VendorHost};

/// Raw input longer than this is refused before any parsing.
const MAX_RAW_LEN: usize = 2048;
const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// Brands shorter than this are matched only by exact fold equality of whole labels.
const FUZZY_MIN_LEN: usize = 5;

fn invalid(raw: &str, why: &str) -> Rejection {
    let shown: String = raw.chars().take(80).collect();
    Rejection::new(code::INVALID_VENDOR, format!("vendor `{shown}` is not a valid host name: {why}"))
}

/// Normalizes a bare host or URL to a [`VendorHost`]; any non-ASCII input is `invalid_vendor` (use
/// [`normalize_for`] to tell look-alikes apart). Punycode (`xn--`) labels are accepted here structurally.
pub fn normalize(raw: &str) -> Result<VendorHost, Rejection> {
    let host = extract_host(raw)?;
    if !host.is_ascii() {
        return Err(invalid(raw, "non-ASCII characters"));
    }
    check_structure(&host).map_err(|why| invalid(raw, why))?;
    Ok(VendorHost::from_normalized(host))
}

/// [`normalize`], but non-ASCII hosts and (non-whitelisted) punycode hosts are refused with
/// `vendor_lookalike` when their skeleton resembles a whitelisted vendor, else with `invalid_vendor`.
pub fn normalize_for(raw: &str, whitelist: &Whitelist) -> Result<VendorHost, Rejection> {
    let host = extract_host(raw)?;
    if host.is_ascii() {
        check_structure(&host).map_err(|why| invalid(raw, why))?;
        if !has_punycode(&host) || whitelist.allows(&host) {
            return Ok(VendorHost::from_normalized(host));
        }
    }
    let skel = skeleton(&host);
    match whitelist.imitated(&skel) {
        Some(entry) => Err(lookalike(raw, entry)),
        None if host.is_ascii() => Err(invalid(raw, "punycode (xn--) host names are not accepted")),
        None => Err(invalid(raw, "non-ASCII characters")),
    }
}

fn lookalike(host: &str, entry: &str) -> Rejection {
    let shown: String = host.chars().take(80).collect();
    Rejection::new(code::VENDOR_LOOKALIKE, format!("vendor `{shown}` looks like whitelisted vendor `{entry}`"))
}

/// Strips scheme, userinfo, port, path, query, fragment and one trailing dot; lowercases (Unicode).
fn extract_host(raw: &str) -> Result<String, Rejection> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(invalid(raw, "empty"));
    }
    if s.len() > MAX_RAW_LEN {
        return Err(invalid(raw, "too long"));
    }
    let s = s.to_lowercase();
    let rest = match s.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => rest,
        _ => s.strip_prefix("//").unwrap_or(&s),
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.split_once(':') {
        Some((host, port)) if port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return Err(invalid(raw, "bad port or IP literal")),
        None => host_port,
    };
    Ok(host.strip_suffix('.').unwrap_or(host).to_owned())
}

fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// Structural rules for a lowercase ASCII host; `Err` says why not.
fn check_structure(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("empty host");
    }
    if host.len() > MAX_HOST_LEN {
        return Err("longer than 253 characters");
    }
    let mut labels = 0;
    for label in host.split('.') {
        labels += 1;
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err("labels must have 1..=63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err("labels may contain only a-z, 0-9 and '-'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("labels may not start or end with '-'");
        }
    }
    if labels < 2 {
        return Err("a host needs at least two labels");
    }
    let tld = host.rsplit('.').next().unwrap_or_default();
    if !tld.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("IP literals are not accepted");
    }
    Ok(())
}

fn has_punycode(host: &str) -> bool {
    host.split('.').any(|l| l.starts_with("xn--"))
}

/// ASCII skeleton of a (lowercased) host. The Unicode work is done by well-kept crates, not by a
/// table of our own: `idna` applies the UTS 46 mapping (case, full-width forms, ideographic full
/// stops such as `。`, NFC) and decodes `xn--` labels; `unicode-security` gives each label's UTS 39
/// confusables skeleton (Cyrillic `о` and Greek `ο` → `o`, accents split off, …). What is still not
/// ASCII after that is dropped. Errors of the mapping are ignored: such a host is refused anyway,
/// the skeleton only says whether as a look-alike.
fn skeleton(host: &str) -> String {
    let (unicode, _errors) = idna::domain_to_unicode(host);
    let labels = unicode.split('.').map(|label| {
        let skel: String = unicode_security::skeleton(label).collect();
        skel.to_lowercase().chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-').collect()
    });
    labels.collect::<Vec<String>>().join(".")
}

/// Folds ASCII look-alikes together: digits to the letters they imitate, `i`/`1` to `l`, `rn` to `m`,
/// `vv` to `w`. Applied to both sides of every comparison.
pub fn fold(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' | 'i' => 'l',
            '2' => 'z',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '6' | '8' => 'b',
            '7' => 't',
            '9' => 'g',
            c => c,
        })
        .collect();
    mapped.replace("rn", "m").replace("vv", "w")
}

/// Optimal-string-alignment distance ≤ 1 (insert, delete, substitute or swap two adjacent bytes).
fn within_one_edit(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if short.len() == long.len() {
        let (s, l) = (&short[prefix..], &long[prefix..]);
        s.len() <= 1 || s[1..] == l[1..] || (s[0] == l[1] && s[1] == l[0] && s[2..] == l[2..])
    } else {
        short[prefix..] == long[prefix + 1..]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    host: String,
    /// Folded brand label (see the module docs).
    brand: String,
}

/// The set of vendors agents may pay (and their subdomains).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Whitelist {
    entries: Vec<Entry>,
}

impl Whitelist {
    /// Normalizes every entry (ASCII hosts or URLs); the first invalid one is named in the error.
    pub fn new(entries: &[String]) -> Result<Whitelist, String> {
        let mut out: Vec<Entry> = Vec::with_capacity(entries.len());
        for raw in entries {
            let host = normalize(raw).map_err(|r| format!("vendor whitelist entry `{raw}`: {}", r.reason))?;
            let host = host.as_str().to_owned();
            if out.iter().any(|e| e.host == host) {
                continue;
            }
            // Brands are compared on skeletons, so a whitelisted `xn--` entry has its decoded brand.
            let skel = skeleton(&host);
            let mut labels: Vec<&str> = skel.split('.').collect();
            labels.pop();
            let brand = labels.iter().rev().fold("", |best, l| if l.len() > best.len() { l } else { best });
            out.push(Entry { brand: fold(brand), host });
        }
        Ok(Whitelist { entries: out })
    }

    /// The normalized entries, in configuration order.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.host.as_str())
    }

    /// `host` equals an entry or is a subdomain of one.
    pub fn allows(&self, host: &str) -> bool {
        self.entries.iter().any(|e| is_same_or_subdomain(host, &e.host))
    }

    /// `Ok` if whitelisted; else `vendor_lookalike` (naming the imitated entry) or `vendor_not_whitelisted`.
    pub fn check(&self, host: &VendorHost) -> Result<(), Rejection> {
        let host = host.as_str();
        if self.allows(host) {
            return Ok(());
        }
        let candidate = if has_punycode(host) { skeleton(host) } else { host.to_owned() };
        match self.imitated(&candidate) {
            Some(entry) => Err(lookalike(host, entry)),
            None => Err(Rejection::new(
                code::VENDOR_NOT_WHITELISTED,
                format!("vendor `{host}` is not on the vendor whitelist"),
            )),
        }
    }

    /// The entry an (ASCII skeleton) host equals, lives under, or resembles.
    fn imitated(&self, host: &str) -> Option<&str> {
        let entry = self.entries.iter().find(|e| is_same_or_subdomain(host, &e.host) || resembles(host, e))?;
        Some(entry.host.as_str())
    }
}

fn is_same_or_subdomain(host: &str, entry: &str) -> bool {
    host == entry
        || (host.len() > entry.len()
            && host.ends_with(entry)
            && host.as_bytes().get(host.len() - entry.len() - 1) == Some(&b'.'))
}

/// Some non-TLD label of `host` is similar to the brand, or (brands ≥ 5 chars) a `-` token of one folds to it.
fn resembles(host: &str, entry: &Entry) -> bool {
    let fuzzy = entry.brand.len() >= FUZZY_MIN_LEN;
    let similar = |label: &str| {
        let f = fold(label);
        f == entry.brand || (fuzzy && within_one_edit(f.as_bytes(), entry.brand.as_bytes()))
    };
    let is_token = |label: &str| fuzzy && label.contains('-') && label.split('-').any(|t| fold(t) == entry.brand);
    let mut labels: Vec<&str> = host.split('.').collect();
    labels.pop();
    labels.iter().any(|label| similar(label) || is_token(label))
}

#[cfg(test)]
#[path = "vendor_tests.rs"]
mod tests;
