//! The pure half of certificate management: issuing a CA and a serving certificate with
//! rcgen, reading PEM material and a certificate's validity (from its DER encoding), and
//! deciding whether the material kept in the Secret can stay or must be renewed.

use super::{CertError, TlsMaterial};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lifetime of the generated CA.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of the generated serving certificate.
pub const SERVING_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Material expiring sooner than this is renewed.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Backdating of `notBefore`, for clocks slightly behind ours.
const BACKDATE_SECS: i64 = 3600;

/// The DNS names the API server may use for `<service>` in `<namespace>`.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Sets `notBefore`/`notAfter` from Unix seconds (rcgen's time type is not named here).
fn set_validity(params: &mut CertificateParams, not_before: i64, not_after: i64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(not_before.max(0) as u64);
    params.not_after = epoch + Duration::from_secs(not_after.max(0) as u64);
}

/// Issues a fresh CA (10 years) and a serving certificate (1 year) for `dns_names`, signed
/// by it; `now` is Unix seconds.
pub fn issue(dns_names: &[String], now: i64) -> Result<TlsMaterial, CertError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Osprey");
    dn.push(DnType::CommonName, "osprey-operator-webhook-ca");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(
        &mut ca,
        now - BACKDATE_SECS,
        now + CA_VALIDITY.as_secs() as i64,
    );
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(dns_names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Osprey");
    let cn = dns_names
        .get(2)
        .or(dns_names.first())
        .cloned()
        .unwrap_or_default();
    dn.push(DnType::CommonName, cn);
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    set_validity(
        &mut leaf,
        now - BACKDATE_SECS,
        now + SERVING_VALIDITY.as_secs() as i64,
    );
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok(TlsMaterial {
        cert_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
        ca_pem: ca_cert.pem(),
    })
}

/// Every certificate in a PEM text, in order.
pub fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Invalid(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(CertError::Invalid("no certificate in PEM".into()));
    }
    Ok(certs)
}

/// The private key in a PEM text (PKCS#8, PKCS#1 or SEC1).
pub fn pem_key(pem: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| CertError::Invalid(format!("private key PEM: {e}")))?
        .ok_or_else(|| CertError::Invalid("no private key in PEM".into()))
}

/// One certificate as PEM text.
pub fn der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// One DER element: (tag, content, rest).
fn der_element(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// An ASN.1 UTCTime (tag 0x17) or GeneralizedTime (0x18) in `Z` form, as Unix seconds.
fn asn1_time(tag: u8, content: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(content).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let num = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (mo, d, h, mi, se) = (num(0)?, num(2)?, num(4)?, num(6)?, num(8)?);
    Some(days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

/// `(notBefore, notAfter)` of a DER certificate, as Unix seconds.
pub fn validity(der: &[u8]) -> Result<(i64, i64), CertError> {
    let bad = || CertError::Invalid("certificate DER: cannot read validity".into());
    let (_, cert, _) = der_element(der).ok_or_else(bad)?;
    let (_, tbs, _) = der_element(cert).ok_or_else(bad)?;
    let mut rest = tbs;
    let (tag, _, after) = der_element(rest).ok_or_else(bad)?;
    if tag == 0xa0 {
        rest = after; // explicit version
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        rest = der_element(rest).ok_or_else(bad)?.2;
    }
    let (_, validity, _) = der_element(rest).ok_or_else(bad)?;
    let (t1, nb, rest) = der_element(validity).ok_or_else(bad)?;
    let (t2, na, _) = der_element(rest).ok_or_else(bad)?;
    Ok((
        asn1_time(t1, nb).ok_or_else(bad)?,
        asn1_time(t2, na).ok_or_else(bad)?,
    ))
}

/// Whether the material in the Secret can be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Renew, and why.
    Renew(String),
}

/// Decides whether `material` (read from the Secret) is still good: it parses, the key
/// matches the certificate, the serving certificate and the CA are valid for more than
/// `renew_before` after `now`, and it was issued for `expected_dns` (as recorded in the
/// Secret's annotation, `issued_for`).
pub fn verdict(
    material: &TlsMaterial,
    expected_dns: &[String],
    issued_for: Option<&str>,
    now: i64,
    renew_before: Duration,
) -> Verdict {
    if let Err(e) = super::resolver::certified_key(material) {
        return Verdict::Renew(format!("unusable material: {e}"));
    }
    let horizon = now + renew_before.as_secs() as i64;
    for (what, pem) in [
        ("serving certificate", &material.cert_pem),
        ("CA", &material.ca_pem),
    ] {
        match pem_certs(pem).and_then(|c| validity(&c[0])) {
            Ok((_, not_after)) if not_after <= horizon => {
                return Verdict::Renew(format!("{what} expires at {not_after} (unix), renewing"))
            }
            Ok(_) => {}
            Err(e) => return Verdict::Renew(format!("{what}: {e}")),
        }
    }
    if issued_for != Some(expected_dns.join(",").as_str()) {
        return Verdict::Renew("issued for other DNS names".into());
    }
    Verdict::Keep
}

/// The caBundle to publish: the current CA, then the first certificate of `previous` (the CA
/// being replaced) while it is still valid, so that the API server trusts the old and the new
/// serving certificate during the switch.
pub fn ca_bundle(current_ca: &str, previous: Option<&str>, now: i64) -> String {
    let mut bundle = current_ca.to_string();
    let Some(prev) = previous.and_then(|p| pem_certs(p).ok()) else {
        return bundle;
    };
    let current = pem_certs(current_ca).ok();
    let first = &prev[0];
    let same = current
        .as_ref()
        .is_some_and(|c| c.iter().any(|d| d == first));
    let valid = validity(first).is_ok_and(|(_, not_after)| not_after > now);
    if !same && valid {
        if !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(&der_to_pem(first));
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn names() -> Vec<String> {
        dns_names("osprey-webhook", "osprey-system")
    }

    #[test]
    fn names_cover_every_service_form() {
        assert_eq!(
            names(),
            [
                "osprey-webhook",
                "osprey-webhook.osprey-system",
                "osprey-webhook.osprey-system.svc",
                "osprey-webhook.osprey-system.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 1, 1) * 86400, NOW);
        assert_eq!(asn1_time(0x17, b"260101000000Z"), Some(NOW));
        assert_eq!(asn1_time(0x18, b"20260101000000Z"), Some(NOW));
        assert_eq!(asn1_time(0x18, b"2026010100000Z"), None);
    }

    #[test]
    fn issued_material_has_the_requested_validity_and_chains() {
        let m = issue(&names(), NOW).unwrap();
        let leaf = pem_certs(&m.cert_pem).unwrap();
        let ca = pem_certs(&m.ca_pem).unwrap();
        assert_eq!(
            validity(&leaf[0]).unwrap(),
            (NOW - BACKDATE_SECS, NOW + SERVING_VALIDITY.as_secs() as i64)
        );
        assert_eq!(
            validity(&ca[0]).unwrap().1,
            NOW + CA_VALIDITY.as_secs() as i64
        );
        // The leaf verifies against the CA for every DNS name.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca[0].clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .unwrap();
        let at = rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(NOW as u64));
        for name in names() {
            let server = rustls::pki_types::ServerName::try_from(name.clone()).unwrap();
            verifier
                .verify_server_cert(&leaf[0], &[], &server, &[], at)
                .unwrap();
        }
    }

    #[test]
    fn verdicts() {
        let m = issue(&names(), NOW).unwrap();
        let joined = names().join(",");
        assert_eq!(
            verdict(&m, &names(), Some(&joined), NOW, RENEW_BEFORE),
            Verdict::Keep
        );
        // 30 days before the end of the year: renew.
        let late = NOW + (SERVING_VALIDITY - RENEW_BEFORE).as_secs() as i64;
        assert!(
            matches!(verdict(&m, &names(), Some(&joined), late, RENEW_BEFORE), Verdict::Renew(r) if r.contains("serving certificate"))
        );
        assert!(matches!(
            verdict(&m, &names(), None, NOW, RENEW_BEFORE),
            Verdict::Renew(_)
        ));
        let other = issue(&names(), NOW).unwrap();
        let mismatched = TlsMaterial {
            key_pem: other.key_pem,
            ..m.clone()
        };
        assert!(
            matches!(verdict(&mismatched, &names(), Some(&joined), NOW, RENEW_BEFORE), Verdict::Renew(r) if r.contains("unusable"))
        );
        let garbage = TlsMaterial {
            cert_pem: "nope".into(),
            ..m
        };
        assert!(matches!(
            verdict(&garbage, &names(), Some(&joined), NOW, RENEW_BEFORE),
            Verdict::Renew(_)
        ));
    }

    #[test]
    fn bundle_keeps_the_previous_ca_while_valid() {
        let old = issue(&names(), NOW).unwrap();
        let new = issue(&names(), NOW).unwrap();
        let b = ca_bundle(&new.ca_pem, Some(&old.ca_pem), NOW);
        assert_eq!(pem_certs(&b).unwrap().len(), 2);
        assert_eq!(
            pem_certs(&b).unwrap()[1],
            pem_certs(&old.ca_pem).unwrap()[0]
        );
        assert_eq!(ca_bundle(&new.ca_pem, Some(&new.ca_pem), NOW), new.ca_pem);
        assert_eq!(ca_bundle(&new.ca_pem, None, NOW), new.ca_pem);
        let expired = NOW + CA_VALIDITY.as_secs() as i64 + 1;
        assert_eq!(
            ca_bundle(&new.ca_pem, Some(&old.ca_pem), expired),
            new.ca_pem
        );
        // der_to_pem round-trips.
        let der = &pem_certs(&old.ca_pem).unwrap()[0];
        assert_eq!(&pem_certs(&der_to_pem(der)).unwrap()[0], der);
    }
}
