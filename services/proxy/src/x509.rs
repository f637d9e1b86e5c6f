//! The one X.509 field rustls-webpki does not expose: rfc822Name subject alternative names.
//!
//! Only ever run on a certificate the TLS handshake already verified, so this is a reader,
//! not a validator: anything it does not understand yields no names (fail closed, since a
//! `san_email` condition then cannot match).

/// A DER element: its tag and contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: 1 to 4 length bytes is plenty for a certificate.
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The elements of a constructed value's contents.
fn children(mut contents: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, value, rest) = element(contents)?;
        contents = rest;
        Some((tag, value))
    })
}

const SEQUENCE: u8 = 0x30;
const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT in TBSCertificate
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const RFC822_NAME: u8 = 0x81; // [1] IMPLICIT IA5String in GeneralName
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17

/// The email addresses in the certificate's subjectAltName extension.
pub(crate) fn san_emails(der: &[u8]) -> Vec<String> {
    let names = || -> Option<Vec<String>> {
        let (SEQUENCE, cert, _) = element(der)? else { return None };
        let (SEQUENCE, tbs, _) = element(cert)? else { return None };
        let (_, extensions) = children(tbs).find(|(tag, _)| *tag == EXTENSIONS)?;
        let (SEQUENCE, extensions, _) = element(extensions)? else { return None };
        for (tag, extension) in children(extensions) {
            if tag != SEQUENCE {
                return None;
            }
            let mut parts = children(extension);
            let (OID, SUBJECT_ALT_NAME) = parts.next()? else { continue };
            // An optional `critical` BOOLEAN comes before the value.
            let (_, value) = parts.find(|(tag, _)| *tag == OCTET_STRING)?;
            let (SEQUENCE, general_names, _) = element(value)? else { return None };
            return Some(
                children(general_names)
                    .filter(|(tag, _)| *tag == RFC822_NAME)
                    .filter_map(|(_, name)| std::str::from_utf8(name).ok())
                    .filter(|name| name.is_ascii())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        Some(Vec::new())
    };
    names().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lengths_and_rejects_truncation() {
        assert_eq!(element(&[0x04, 0x02, 1, 2, 9]), Some((0x04, &[1u8, 2][..], &[9u8][..])));
        assert_eq!(element(&[0x04, 0x81, 0x01, 7]), Some((0x04, &[7u8][..], &[][..])));
        assert_eq!(element(&[0x04, 0x03, 1, 2]), None, "shorter than its length");
        assert_eq!(element(&[0x04, 0x85, 1, 1, 1, 1, 1]), None, "absurd length of length");
        assert_eq!(element(&[0x04]), None);
        assert!(san_emails(&[0x30, 0x80]).is_empty(), "garbage yields nothing");
    }
}
