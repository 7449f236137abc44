//! A storage account's connection string (`AZURE_STORAGE_CONNECTION_STRING`):
//! `DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=…`,
//! optionally with a `BlobEndpoint` (emulators, custom domains), or
//! `UseDevelopmentStorage=true` for Azurite's well-known account.

use reqwest::Url;

use super::shared_key::AccountKey;

/// The emulator's account, the same for every install (published in
/// Azurite's README, not a secret).
pub const DEV_ACCOUNT_NAME: &str = "devstoreaccount1";
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const DEV_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// What the Blob adapter needs of a connection string; `Debug` hides the
/// key (through `AccountKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConnection {
    pub account: String,
    pub key: AccountKey,
    /// The Blob service's base URL without a trailing `/`: on Azure
    /// `https://{account}.blob.core.windows.net`, on an emulator
    /// `http://127.0.0.1:10000/{account}` (path-style).
    pub blob_endpoint: Url,
}

impl StorageConnection {
    /// Errors name the missing or malformed part, never the key.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut account = None;
        let mut key = None;
        let mut blob_endpoint = None;
        let mut protocol = None;
        let mut suffix = None;
        let mut development = false;
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or("a part of the connection string is not name=value")?;
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "accountname" => account = Some(value),
                "accountkey" => key = Some(value),
                "blobendpoint" => blob_endpoint = Some(value),
                "defaultendpointsprotocol" => protocol = Some(value),
                "endpointsuffix" => suffix = Some(value),
                "usedevelopmentstorage" => development = value.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        if development {
            return Ok(Self::development());
        }
        let account = account.ok_or("AccountName is missing")?;
        let key = AccountKey::from_base64(
            key.ok_or("AccountKey is missing (only Shared Key connection strings are supported)")?,
        )?;
        let endpoint = match blob_endpoint {
            Some(e) => e.to_owned(),
            None => {
                let protocol = protocol.unwrap_or("https").to_ascii_lowercase();
                if protocol != "https" && protocol != "http" {
                    return Err(format!(
                        "DefaultEndpointsProtocol {protocol:?} is not https or http"
                    ));
                }
                let suffix = suffix.unwrap_or("core.windows.net");
                format!("{protocol}://{account}.blob.{suffix}")
            }
        };
        Ok(Self {
            account: account.to_owned(),
            key,
            blob_endpoint: endpoint_url(&endpoint)?,
        })
    }

    /// Azurite's account on its default port.
    pub fn development() -> Self {
        Self::development_at(DEV_BLOB_ENDPOINT.parse().expect("a valid URL"))
    }

    /// Azurite's account behind `blob_endpoint` (another port).
    pub fn development_at(blob_endpoint: Url) -> Self {
        Self {
            account: DEV_ACCOUNT_NAME.to_owned(),
            key: AccountKey::from_base64(DEV_ACCOUNT_KEY).expect("the well-known key is base64"),
            blob_endpoint,
        }
    }
}

fn endpoint_url(endpoint: &str) -> Result<Url, String> {
    let url = Url::parse(endpoint.trim_end_matches('/'))
        .map_err(|e| format!("BlobEndpoint {endpoint:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(format!("BlobEndpoint {endpoint:?} is not an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "BlobEndpoint {endpoint:?} has a query or fragment (a SAS token is not supported)"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleQ==";

    #[test]
    fn an_azure_connection_string_names_the_accounts_endpoint() {
        let c = StorageConnection::parse(&format!(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={KEY};EndpointSuffix=core.windows.net"
        ))
        .unwrap();
        assert_eq!(c.account, "acme");
        assert_eq!(c.key, AccountKey::from_base64(KEY).unwrap());
        assert_eq!(
            c.blob_endpoint.as_str(),
            "https://acme.blob.core.windows.net/"
        );
        // Another cloud's suffix, the protocol's default, any name case.
        let c = StorageConnection::parse(&format!(
            "accountname=acme; accountkey={KEY}; endpointsuffix=core.chinacloudapi.cn;"
        ))
        .unwrap();
        assert_eq!(
            c.blob_endpoint.as_str(),
            "https://acme.blob.core.chinacloudapi.cn/"
        );
    }

    #[test]
    fn a_blob_endpoint_wins_and_keeps_its_path() {
        let c = StorageConnection::parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};\
             BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
        ))
        .unwrap();
        assert_eq!(
            c.blob_endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(c.blob_endpoint.path(), "/devstoreaccount1");
    }

    #[test]
    fn development_storage_is_azurites_well_known_account() {
        let c = StorageConnection::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c, StorageConnection::development());
        assert_eq!(c.account, "devstoreaccount1");
        assert_eq!(c.blob_endpoint.as_str(), DEV_BLOB_ENDPOINT);
    }

    #[test]
    fn bad_strings_name_the_part_and_never_show_the_key() {
        let secret = "c2VjcmV0LWtleQ";
        for (s, needle) in [
            (format!("AccountKey={secret}=="), "AccountName"),
            ("AccountName=a".to_owned(), "AccountKey"),
            (
                "AccountName=a;SharedAccessSignature=sv=2021&sig=x".to_owned(),
                "AccountKey",
            ),
            (format!("AccountName=a;AccountKey={secret}!!"), "base64"),
            (
                format!("AccountName=a;AccountKey={KEY};DefaultEndpointsProtocol=ftp"),
                "DefaultEndpointsProtocol",
            ),
            (
                format!("AccountName=a;AccountKey={KEY};BlobEndpoint=not a url"),
                "BlobEndpoint",
            ),
            (
                format!("AccountName=a;AccountKey={KEY};BlobEndpoint=https://a.blob.x/?sv=1"),
                "BlobEndpoint",
            ),
            (format!("AccountName=a;{secret}"), "name=value"),
        ] {
            let err = StorageConnection::parse(&s).unwrap_err();
            assert!(err.contains(needle), "{s}: {err}");
            assert!(!err.contains(secret), "{s}: {err}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let c = StorageConnection::parse(&format!("AccountName=a;AccountKey={KEY}")).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains(KEY) && shown.contains("***"), "{shown}");
    }
}
