//! Entra ID (Azure AD) credentials from `azure_identity`, the way Azure's
//! own guidance asks a service to authenticate instead of account keys and
//! SAS keys: a service principal's client secret, a workload identity's
//! federated token (AKS), or the managed identity of the host (App Service
//! and Functions through `IDENTITY_ENDPOINT`, VMs through IMDS). The SDK
//! caches each token and fetches a new one five minutes before it expires;
//! tokens are never logged, and `Debug` shows no secret.

//!
//! The settings are read without the `azure` feature (start-up names what
//! is missing either way); the credentials need it.

use std::path::PathBuf;
#[cfg(feature = "azure")]
use std::sync::Arc;

#[cfg(feature = "azure")]
use async_trait::async_trait;
#[cfg(feature = "azure")]
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
/// The SDK's credential trait, for the hosts that hold one.
#[cfg(feature = "azure")]
pub use azure_core::credentials::TokenCredential;
#[cfg(feature = "azure")]
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

#[cfg(feature = "azure")]
use crate::llm::AuthHeader;

/// The scope of Azure OpenAI (Cognitive Services) tokens.
pub const OPENAI_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// The scope of Service Bus tokens.
pub const SERVICE_BUS_SCOPE: &str = "https://servicebus.azure.net/.default";
/// The scope of Storage tokens (the Blob SDK asks for it itself).
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// Which Entra credential the settings make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraKind {
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// `AZURE_FEDERATED_TOKEN_FILE` (with the tenant and client ids).
    WorkloadIdentity,
    /// The host's identity; user-assigned when `AZURE_CLIENT_ID` is set.
    ManagedIdentity,
}

impl EntraKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntraKind::ClientSecret => "Entra ID client secret",
            EntraKind::WorkloadIdentity => "Entra ID workload identity",
            EntraKind::ManagedIdentity => "Entra ID managed identity",
        }
    }
}

/// The Entra settings of the original's configuration (`AZURE_CLIENT_ID`,
/// `AZURE_CLIENT_SECRET`) and `azure_identity`'s (`AZURE_TENANT_ID`,
/// `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EntraSettings {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub federated_token_file: Option<PathBuf>,
    /// The identity platform's base URL (sovereign clouds, a local fake);
    /// `https://login.microsoftonline.com` when unset.
    pub authority_host: Option<String>,
}

impl std::fmt::Debug for EntraSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraSettings")
            .field("kind", &self.kind())
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("federated_token_file", &self.federated_token_file)
            .field("authority_host", &self.authority_host)
            .finish()
    }
}

impl EntraSettings {
    pub fn kind(&self) -> EntraKind {
        if self.client_secret.is_some() {
            EntraKind::ClientSecret
        } else if self.federated_token_file.is_some() {
            EntraKind::WorkloadIdentity
        } else {
            EntraKind::ManagedIdentity
        }
    }

    /// The first setting `kind` needs that is missing, by name.
    pub fn missing(&self) -> Option<&'static str> {
        match self.kind() {
            EntraKind::ClientSecret | EntraKind::WorkloadIdentity => {
                if self.tenant_id.is_none() {
                    Some("AZURE_TENANT_ID")
                } else if self.client_id.is_none() {
                    Some("AZURE_CLIENT_ID")
                } else {
                    None
                }
            }
            EntraKind::ManagedIdentity => None,
        }
    }

    /// The credential, its token requests sent through `http`.
    #[cfg(feature = "azure")]
    pub fn credential(&self, http: &reqwest::Client) -> Result<Arc<dyn TokenCredential>, String> {
        if let Some(var) = self.missing() {
            return Err(format!(
                "{var} is required for the {}",
                self.kind().as_str()
            ));
        }
        let mut client_options = crate::azure_http::client_options(http);
        if let Some(host) = &self.authority_host {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = host.clone();
            client_options.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
        }
        let tenant = self.tenant_id.clone().unwrap_or_default();
        let client = self.client_id.clone();
        let shown = |e: azure_core::Error| {
            format!(
                "{}: {}",
                self.kind().as_str(),
                crate::azure_http::sdk_error_text(&e)
            )
        };
        Ok(match self.kind() {
            EntraKind::ClientSecret => ClientSecretCredential::new(
                &tenant,
                client.unwrap_or_default(),
                self.client_secret.clone().unwrap_or_default().into(),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(shown)?,
            EntraKind::WorkloadIdentity => {
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions { client_options },
                    client_id: client,
                    tenant_id: Some(tenant),
                    token_file_path: self.federated_token_file.clone(),
                }))
                .map_err(shown)?
            }
            EntraKind::ManagedIdentity => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client.map(UserAssignedId::ClientId),
                    client_options,
                }))
                .map_err(shown)?
            }
        })
    }
}

/// A bearer token of one scope as an `Authorization` header value, for
/// the REST calls this service makes itself (Azure OpenAI).
#[cfg(feature = "azure")]
#[derive(Clone)]
pub struct BearerToken {
    credential: Arc<dyn TokenCredential>,
    scope: &'static str,
}

#[cfg(feature = "azure")]
impl BearerToken {
    pub fn new(credential: Arc<dyn TokenCredential>, scope: &'static str) -> Self {
        Self { credential, scope }
    }
}

#[cfg(feature = "azure")]
impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "azure")]
#[async_trait]
impl AuthHeader for BearerToken {
    async fn header(&self) -> Result<(&'static str, String), String> {
        let token = self
            .credential
            .get_token(&[self.scope], None)
            .await
            .map_err(|e| crate::azure_http::sdk_error_text(&e))?;
        Ok(("authorization", format!("Bearer {}", token.token.secret())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_follows_the_settings_and_names_what_is_missing() {
        let mut s = EntraSettings::default();
        assert_eq!(s.kind(), EntraKind::ManagedIdentity);
        assert_eq!(s.missing(), None);
        s.client_secret = Some("shh".into());
        assert_eq!(s.kind(), EntraKind::ClientSecret);
        assert_eq!(s.missing(), Some("AZURE_TENANT_ID"));
        s.tenant_id = Some("t".into());
        assert_eq!(s.missing(), Some("AZURE_CLIENT_ID"));
        s.client_id = Some("c".into());
        assert_eq!(s.missing(), None);
        assert!(!format!("{s:?}").contains("shh"));
        let w = EntraSettings {
            federated_token_file: Some("/var/run/token".into()),
            ..Default::default()
        };
        assert_eq!(w.kind(), EntraKind::WorkloadIdentity);
        assert_eq!(w.missing(), Some("AZURE_TENANT_ID"));
    }
}
