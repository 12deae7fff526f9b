//! The validated PII policy and prompt guard.

pub use crate::raw::{GuardAction, PiiAction, PiiValidator};

/// The entity types the proxy recognizes without configuration. The
/// secrets (keys, tokens, credentials) come last, from `OpenaiKey` on
/// ([`Builtin::is_secret`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Builtin {
    Email,
    Phone,
    CreditCard,
    UsSsn,
    Iban,
    IpAddress,
    MacAddress,
    UrlCredentials,
    DateOfBirth,
    OpenaiKey,
    AnthropicKey,
    AwsAccessKey,
    GithubToken,
    SlackToken,
    Jwt,
    PrivateKey,
    GoogleApiKey,
    AwsSecretKey,
    HuggingfaceToken,
    StripeKey,
    GitlabToken,
    NpmToken,
    PypiToken,
    AzureStorageKey,
    SendgridKey,
    TwilioKey,
    DiscordWebhook,
    TelegramBotToken,
    DatabricksToken,
    GcpServiceAccount,
    GenericSecret,
}

impl Builtin {
    pub const ALL: [Builtin; 31] = [
        Builtin::Email,
        Builtin::Phone,
        Builtin::CreditCard,
        Builtin::UsSsn,
        Builtin::Iban,
        Builtin::IpAddress,
        Builtin::MacAddress,
        Builtin::UrlCredentials,
        Builtin::DateOfBirth,
        Builtin::OpenaiKey,
        Builtin::AnthropicKey,
        Builtin::AwsAccessKey,
        Builtin::GithubToken,
        Builtin::SlackToken,
        Builtin::Jwt,
        Builtin::PrivateKey,
        Builtin::GoogleApiKey,
        Builtin::AwsSecretKey,
        Builtin::HuggingfaceToken,
        Builtin::StripeKey,
        Builtin::GitlabToken,
        Builtin::NpmToken,
        Builtin::PypiToken,
        Builtin::AzureStorageKey,
        Builtin::SendgridKey,
        Builtin::TwilioKey,
        Builtin::DiscordWebhook,
        Builtin::TelegramBotToken,
        Builtin::DatabricksToken,
        Builtin::GcpServiceAccount,
        Builtin::GenericSecret,
    ];

    /// Name in config and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Email => "email",
            Builtin::Phone => "phone",
            Builtin::CreditCard => "credit_card",
            Builtin::UsSsn => "us_ssn",
            Builtin::Iban => "iban",
            Builtin::IpAddress => "ip_address",
            Builtin::MacAddress => "mac_address",
            Builtin::UrlCredentials => "url_credentials",
            Builtin::DateOfBirth => "date_of_birth",
            Builtin::OpenaiKey => "openai_key",
            Builtin::AnthropicKey => "anthropic_key",
            Builtin::AwsAccessKey => "aws_access_key",
            Builtin::GithubToken => "github_token",
            Builtin::SlackToken => "slack_token",
            Builtin::Jwt => "jwt",
            Builtin::PrivateKey => "private_key",
            Builtin::GoogleApiKey => "google_api_key",
            Builtin::AwsSecretKey => "aws_secret_key",
            Builtin::HuggingfaceToken => "huggingface_token",
            Builtin::StripeKey => "stripe_key",
            Builtin::GitlabToken => "gitlab_token",
            Builtin::NpmToken => "npm_token",
            Builtin::PypiToken => "pypi_token",
            Builtin::AzureStorageKey => "azure_storage_key",
            Builtin::SendgridKey => "sendgrid_key",
            Builtin::TwilioKey => "twilio_key",
            Builtin::DiscordWebhook => "discord_webhook",
            Builtin::TelegramBotToken => "telegram_bot_token",
            Builtin::DatabricksToken => "databricks_token",
            Builtin::GcpServiceAccount => "gcp_service_account",
            Builtin::GenericSecret => "generic_secret",
        }
    }

    /// Keys, tokens and other credentials (the secrets recognizer's types).
    pub fn is_secret(self) -> bool {
        self.index() >= Builtin::OpenaiKey.index()
    }

    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Index into [`Builtin::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How one entity type is treated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntityPolicy {
    pub enabled: bool,
    pub action: PiiAction,
    pub min_score: f64,
}

/// A validated custom recognizer.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomRecognizer {
    pub name: String,
    pub matcher: CustomMatcher,
    pub validator: Option<PiiValidator>,
    /// Lower-cased; the match needs one of them within `context_window`.
    pub context: Vec<String>,
    pub context_window: usize,
    pub action: PiiAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CustomMatcher {
    /// Compiles (checked at load).
    Regex(String),
    Terms(Vec<String>),
}

/// Prompt-guard settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptGuard {
    pub enabled: bool,
    pub user: GuardAction,
    pub tool_results: GuardAction,
    pub disabled_rules: Vec<String>,
    pub min_blob_length: usize,
}

/// Rule names the guard knows.
pub const GUARD_RULES: [&str; 7] = [
    "instruction_override",
    "role_play",
    "prompt_leak",
    "invisible_chars",
    "bidi_chars",
    "tag_chars",
    "encoded_blob",
];

impl Default for PromptGuard {
    fn default() -> Self {
        PromptGuard {
            enabled: false,
            user: GuardAction::Flag,
            tool_results: GuardAction::Flag,
            disabled_rules: Vec::new(),
            min_blob_length: 256,
        }
    }
}

/// The whole `pii:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Pii {
    pub enabled: bool,
    /// Same order as [`Builtin::ALL`].
    pub builtins: Vec<EntityPolicy>,
    pub custom: Vec<CustomRecognizer>,
    /// Minimum score of custom recognizers (they score 1.0 unless context
    /// is missing).
    pub min_score: f64,
    pub hash_salt: String,
    pub scan_responses: bool,
    pub max_hold_back: usize,
    pub guard: PromptGuard,
}

impl Default for Pii {
    fn default() -> Self {
        Pii {
            enabled: false,
            builtins: Builtin::ALL
                .iter()
                .map(|_| EntityPolicy {
                    enabled: true,
                    action: PiiAction::Mask,
                    min_score: 0.5,
                })
                .collect(),
            custom: Vec::new(),
            min_score: 0.5,
            hash_salt: String::new(),
            scan_responses: false,
            max_hold_back: 4096,
            guard: PromptGuard::default(),
        }
    }
}

impl Pii {
    /// True when requests are scanned at all (PII or guard).
    pub fn is_active(&self) -> bool {
        self.enabled || self.guard.enabled
    }

    pub fn policy(&self, b: Builtin) -> &EntityPolicy {
        &self.builtins[b.index()]
    }
}

impl PiiAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiAction::Mask => "mask",
            PiiAction::Hash => "hash",
            PiiAction::Pseudonymize => "pseudonymize",
            PiiAction::Block => "block",
            PiiAction::Audit => "audit",
        }
    }
}

impl GuardAction {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardAction::Flag => "flag",
            GuardAction::Strip => "strip",
            GuardAction::Block => "block",
        }
    }
}
