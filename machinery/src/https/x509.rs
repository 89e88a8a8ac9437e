//! A minimal X.509 reader — enough of DER to read what Kubernetes reads from a certificate: the
//! subject (CN is the user, each O a group), the issuer's CN and the expiry — and the DER of a
//! PEM `CERTIFICATE` block. Signatures are checked by rustls, never here.

/// Why a certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    /// The PEM text holds no readable certificate.
    #[error("not a PEM certificate: {0}")]
    Pem(String),
    /// The DER could not be parsed.
    #[error("malformed certificate: {0}")]
    Der(&'static str),
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
pub fn pem_der(pem: &str) -> Result<Vec<u8>, X509Error> {
    use base64::Engine;
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = pem
        .find(begin)
        .ok_or_else(|| X509Error::Pem("no certificate".into()))?
        + begin.len();
    let end = pem[start..]
        .find("-----END CERTIFICATE-----")
        .ok_or_else(|| X509Error::Pem("unterminated certificate".into()))?;
    let b64: String = pem[start..start + end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| X509Error::Pem(e.to_string()))
}

/// One DER element: (tag, content, rest after it).
fn tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), X509Error> {
    let (&tag, rest) = buf.split_first().ok_or(X509Error::Der("truncated"))?;
    let (&first, rest) = rest
        .split_first()
        .ok_or(X509Error::Der("truncated length"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(X509Error::Der("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(X509Error::Der("element longer than its container"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(
    buf: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), X509Error> {
    let (t, content, rest) = tlv(buf)?;
    if t != tag {
        return Err(X509Error::Der(what));
    }
    Ok((content, rest))
}

/// The parts of a certificate's TBS: (issuer, validity, subject) contents.
struct Tbs<'a> {
    issuer: &'a [u8],
    validity: &'a [u8],
    subject: &'a [u8],
}

fn tbs(der: &[u8]) -> Result<Tbs<'_>, X509Error> {
    let (cert, _) = expect(der, 0x30, "certificate is not a SEQUENCE")?;
    let (tbs, _) = expect(cert, 0x30, "tbsCertificate is not a SEQUENCE")?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2; // [0] version
    }
    let (_, rest) = expect(rest, 0x02, "serial is not an INTEGER")?;
    let (_, rest) = expect(rest, 0x30, "signature algorithm is not a SEQUENCE")?;
    let (issuer, rest) = expect(rest, 0x30, "issuer is not a SEQUENCE")?;
    let (validity, rest) = expect(rest, 0x30, "validity is not a SEQUENCE")?;
    let (subject, _) = expect(rest, 0x30, "subject is not a SEQUENCE")?;
    Ok(Tbs {
        issuer,
        validity,
        subject,
    })
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];

/// The (attribute OID, string value) pairs of a Name, in order.
fn name_attributes(mut name: &[u8]) -> Result<Vec<(&[u8], String)>, X509Error> {
    let mut out = Vec::new();
    while !name.is_empty() {
        let (mut set, rest) = expect(name, 0x31, "RDN is not a SET")?;
        name = rest;
        while !set.is_empty() {
            let (atv, rest) = expect(set, 0x30, "attribute is not a SEQUENCE")?;
            set = rest;
            let (oid, value) = expect(atv, 0x06, "attribute type is not an OID")?;
            let (tag, content, _) = tlv(value)?;
            let text = match tag {
                // UTF8String, PrintableString, IA5String, T61String
                0x0c | 0x13 | 0x16 | 0x14 => String::from_utf8_lossy(content).into_owned(),
                // BMPString
                0x1e => {
                    let units: Vec<u16> = content
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16_lossy(&units)
                }
                _ => continue,
            };
            out.push((oid, text));
        }
    }
    Ok(out)
}

/// A certificate subject as Kubernetes reads it: CN is the user, each O a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The common name.
    pub common_name: String,
    /// The organizations.
    pub organizations: Vec<String>,
}

/// The subject of a DER certificate.
pub fn subject_of(der: &[u8]) -> Result<Subject, X509Error> {
    let attrs = name_attributes(tbs(der)?.subject)?;
    let common_name = attrs
        .iter()
        .find(|(oid, _)| *oid == OID_CN)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let organizations = attrs
        .into_iter()
        .filter(|(oid, _)| *oid == OID_O)
        .map(|(_, v)| v)
        .collect();
    Ok(Subject {
        common_name,
        organizations,
    })
}

/// The common name of a DER certificate's issuer.
pub fn issuer_cn(der: &[u8]) -> Result<String, X509Error> {
    Ok(name_attributes(tbs(der)?.issuer)?
        .into_iter()
        .find(|(oid, _)| *oid == OID_CN)
        .map(|(_, v)| v)
        .unwrap_or_default())
}

/// The notAfter time of a DER certificate.
pub fn not_after(der: &[u8]) -> Result<time::OffsetDateTime, X509Error> {
    let validity = tbs(der)?.validity;
    let (_, _, rest) = tlv(validity)?;
    let (tag, content, _) = tlv(rest)?;
    let text = std::str::from_utf8(content).map_err(|_| X509Error::Der("time is not ASCII"))?;
    let digits = |s: &str| -> Result<i64, X509Error> {
        s.parse().map_err(|_| X509Error::Der("time is not numeric"))
    };
    let (year, rest) = match tag {
        0x17 if text.len() >= 12 => {
            let y = digits(&text[..2])?;
            (if y < 50 { 2000 + y } else { 1900 + y }, &text[2..])
        }
        0x18 if text.len() >= 14 => (digits(&text[..4])?, &text[4..]),
        _ => return Err(X509Error::Der("unknown time type")),
    };
    let month = u8::try_from(digits(&rest[..2])?).map_err(|_| X509Error::Der("bad month"))?;
    let month = time::Month::try_from(month).map_err(|_| X509Error::Der("bad month"))?;
    let day = u8::try_from(digits(&rest[2..4])?).map_err(|_| X509Error::Der("bad day"))?;
    let hour = u8::try_from(digits(&rest[4..6])?).map_err(|_| X509Error::Der("bad hour"))?;
    let minute = u8::try_from(digits(&rest[6..8])?).map_err(|_| X509Error::Der("bad minute"))?;
    let date = time::Date::from_calendar_date(
        i32::try_from(year).map_err(|_| X509Error::Der("bad year"))?,
        month,
        day,
    )
    .map_err(|_| X509Error::Der("bad date"))?;
    let t = time::Time::from_hms(hour, minute, 0).map_err(|_| X509Error::Der("bad time"))?;
    Ok(time::PrimitiveDateTime::new(date, t).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input_is_an_error() {
        assert!(subject_of(b"\x30\x05\x30").is_err());
        assert!(subject_of(b"").is_err());
        assert!(not_after(b"\x30\x00").is_err());
        assert!(matches!(pem_der("junk"), Err(X509Error::Pem(_))));
        assert!(pem_der("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err());
    }
}
