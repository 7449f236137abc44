//! Shared Key authorization of the Blob service, as the Storage REST
//! reference's "Authorize with Shared Key" page defines it (version
//! 2015-02-21 and later): the string-to-sign of a request and its
//! HMAC-SHA256 under the account key, sent as
//! `Authorization: SharedKey {account}:{signature}`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A storage account's key, decoded from its base64 text; `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountKey(Vec<u8>);

impl AccountKey {
    /// From the base64 text the portal and connection strings hold. The
    /// error never repeats the text.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(key) if !key.is_empty() => Ok(Self(key)),
            Ok(_) => Err("AccountKey is empty".to_owned()),
            Err(_) => Err("AccountKey is not valid base64".to_owned()),
        }
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(***)")
    }
}

/// What Shared Key signs of one request.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub verb: &'a str,
    /// Every header the request carries that the signature covers (the
    /// standard ones below and all `x-ms-*`), names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub account: &'a str,
    /// The URL's path exactly as sent (percent-encoded), from its leading
    /// `/`; on an emulator it starts with the account name again.
    pub path: &'a str,
    /// The query's parameters, decoded.
    pub query: &'a [(&'a str, &'a str)],
}

/// The standard headers, in the order the string-to-sign lists them.
const STANDARD_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

pub fn string_to_sign(parts: &SignedParts<'_>) -> String {
    let header = |name: &str| {
        parts
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.trim())
    };
    let mut out = parts.verb.to_ascii_uppercase();
    out.push('\n');
    for name in STANDARD_HEADERS {
        let value = header(name);
        // Since version 2015-02-21 a zero length is signed as empty, so a
        // client that omits the header and one that sends 0 agree.
        let value = if name == "content-length" && value == "0" {
            ""
        } else {
            value
        };
        out.push_str(value);
        out.push('\n');
    }
    let mut ms: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(n, _)| n.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("x-ms-")))
        .map(|(n, v)| {
            let value = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (n.trim().to_ascii_lowercase(), value)
        })
        .collect();
    ms.sort();
    for (name, value) in ms {
        out.push_str(&name);
        out.push(':');
        out.push_str(&value);
        out.push('\n');
    }
    out.push('/');
    out.push_str(parts.account);
    out.push_str(parts.path);
    let mut query: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, value) in parts.query {
        query
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value);
    }
    for (name, mut values) in query {
        values.sort_unstable();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

/// The base64 HMAC-SHA256 of `string_to_sign` under `key`.
pub fn signature(key: &AccountKey, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header's value for a request.
pub fn authorization(key: &AccountKey, parts: &SignedParts<'_>) -> String {
    format!(
        "SharedKey {}:{}",
        parts.account,
        signature(key, &string_to_sign(parts))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Fri, 26 Jun 2015 23:39:12 GMT";

    #[test]
    fn the_reference_pages_example_canonicalises_as_documented() {
        // The example of "Authorize with Shared Key": Get Container Metadata.
        let parts = SignedParts {
            verb: "get",
            headers: &[("x-ms-version", "2015-02-21"), ("X-MS-Date", DATE)],
            account: "myaccount",
            path: "/mycontainer",
            query: &[
                ("restype", "container"),
                ("comp", "metadata"),
                ("timeout", "20"),
            ],
        };
        assert_eq!(
            string_to_sign(&parts),
            "GET\n\n\n\n\n\n\n\n\n\n\n\n\
             x-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n\
             /myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
        );
    }

    #[test]
    fn standard_headers_take_their_slots_and_a_zero_length_signs_empty() {
        let headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", "11"),
            ("Range", "bytes=0-9"),
            ("x-ms-blob-type", "BlockBlob"),
            ("x-ms-date", DATE),
            ("x-ms-meta-note", "  two   words "),
            ("Host", "ignored"),
        ];
        let parts = SignedParts {
            verb: "PUT",
            headers: &headers,
            account: "devstoreaccount1",
            path: "/devstoreaccount1/c/a%20b/x.json",
            query: &[],
        };
        assert_eq!(
            string_to_sign(&parts),
            "PUT\n\n\n11\n\napplication/octet-stream\n\n\n\n\n\nbytes=0-9\n\
             x-ms-blob-type:BlockBlob\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\n\
             x-ms-meta-note:two words\n/devstoreaccount1/devstoreaccount1/c/a%20b/x.json"
        );
        let zero = [("Content-Length", "0")];
        let parts = SignedParts {
            headers: &zero,
            ..parts
        };
        assert!(string_to_sign(&parts).starts_with("PUT\n\n\n\n\n"));
    }

    #[test]
    fn repeated_query_parameters_join_their_sorted_values() {
        let parts = SignedParts {
            verb: "GET",
            headers: &[],
            account: "a",
            path: "/",
            query: &[
                ("Include", "snapshots"),
                ("comp", "list"),
                ("include", "metadata"),
            ],
        };
        assert_eq!(
            string_to_sign(&parts),
            "GET\n\n\n\n\n\n\n\n\n\n\n\n/a/\ncomp:list\ninclude:metadata,snapshots"
        );
    }

    #[test]
    fn the_signature_matches_one_computed_independently() {
        // python3 -c 'import hmac,hashlib,base64;
        //   k=base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==");
        //   s="GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2021-08-06\n/devstoreaccount1/devstoreaccount1/c/k";
        //   print(base64.b64encode(hmac.new(k,s.encode(),hashlib.sha256).digest()).decode())'
        let key = AccountKey::from_base64(super::super::connection::DEV_ACCOUNT_KEY).unwrap();
        let parts = SignedParts {
            verb: "GET",
            headers: &[("x-ms-date", DATE), ("x-ms-version", "2021-08-06")],
            account: "devstoreaccount1",
            path: "/devstoreaccount1/c/k",
            query: &[],
        };
        assert_eq!(
            authorization(&key, &parts),
            "SharedKey devstoreaccount1:wf0ZZ7sVBrUCx9ffZ+CLA8t0nK3oothd7GYqmush4gY="
        );
    }

    #[test]
    fn a_key_is_never_shown() {
        let key = AccountKey::from_base64("c2VjcmV0").unwrap();
        assert_eq!(format!("{key:?}"), "AccountKey(***)");
        let err = AccountKey::from_base64("not base64 secret!").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
