//! Secrets: each prefix, shape and name recognized, and the values that
//! look like secrets but are not.

use super::*;

fn find_all(t: &str) -> Vec<(Builtin, String)> {
    let mut out = Vec::new();
    Secrets::new().scan(t, &Enabled::all(), &mut out);
    out.iter()
        .map(|f| match f.entity {
            crate::pii::finding::Entity::Builtin(b) => (b, t[f.start..f.end].to_string()),
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn prefixed_tokens() {
    let cases = [
        ("key sk-proj-AbCdEf0123456789xYzAbCdEf01 ok", Builtin::OpenaiKey, "sk-proj-AbCdEf0123456789xYzAbCdEf01"),
        ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789", Builtin::AnthropicKey, "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"),
        ("aws AKIAIOSFODNN7EXAMPLE.", Builtin::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
        ("ghp_0123456789abcdefghijABCDEFGHIJklmnop", Builtin::GithubToken, "ghp_0123456789abcdefghijABCDEFGHIJklmnop"),
        ("xoxb-1234567890-abcdefghij", Builtin::SlackToken, "xoxb-1234567890-abcdefghij"),
        ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX", Builtin::SlackToken, "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U x", Builtin::Jwt, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ];
    for (t, ty, want) in cases {
        assert_eq!(find_all(t), [(ty, want.to_string())], "{t}");
    }
}

/// Key formats of the major platforms (shapes as gitleaks and
/// trufflehog document them; the values here are made up).
#[test]
fn platform_keys() {
    let hex32 = "0123456789abcdef0123456789abcdef";
    let b64_40 = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let azure = format!("{}==", "Ab1+".repeat(21) + "xy");
    let cases: Vec<(String, Builtin, String)> = vec![
        (
            "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY here".into(),
            Builtin::GoogleApiKey,
            "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY".into(),
        ),
        (
            format!("aws_secret_access_key = {b64_40}"),
            Builtin::AwsSecretKey,
            b64_40.into(),
        ),
        (
            format!("{{\"SecretAccessKey\": \"{b64_40}\"}}"),
            Builtin::AwsSecretKey,
            b64_40.into(),
        ),
        (
            "HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh".into(),
            Builtin::HuggingfaceToken,
            "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh".into(),
        ),
        (
            "stripe sk_live_51H8aBcDeFgHiJkLmNoPqRsTu ok".into(),
            Builtin::StripeKey,
            "sk_live_51H8aBcDeFgHiJkLmNoPqRsTu".into(),
        ),
        (
            "restricted rk_test_51H8aBcDeFgHiJkLmNoPqRsTu".into(),
            Builtin::StripeKey,
            "rk_test_51H8aBcDeFgHiJkLmNoPqRsTu".into(),
        ),
        (
            "token glpat-x9Yz8AbCdEfGhIjKlMnO done".into(),
            Builtin::GitlabToken,
            "glpat-x9Yz8AbCdEfGhIjKlMnO".into(),
        ),
        (
            "//registry.npmjs.org/:_authToken=npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789".into(),
            Builtin::NpmToken,
            "npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789".into(),
        ),
        (
            format!("password = pypi-AgEIcHlwaS5vcmc{}", "Ab1_".repeat(14)),
            Builtin::PypiToken,
            format!("pypi-AgEIcHlwaS5vcmc{}", "Ab1_".repeat(14)),
        ),
        (
            format!("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={azure};EndpointSuffix=core.windows.net"),
            Builtin::AzureStorageKey,
            azure.clone(),
        ),
        (
            "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 done".into(),
            Builtin::SendgridKey,
            "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".into(),
        ),
        (
            format!("twilio api key SK{hex32} for sms"),
            Builtin::TwilioKey,
            format!("SK{hex32}"),
        ),
        (
            format!("post to https://discord.com/api/webhooks/123456789012345678/{}", "aB3-".repeat(17)),
            Builtin::DiscordWebhook,
            format!("https://discord.com/api/webhooks/123456789012345678/{}", "aB3-".repeat(17)),
        ),
        (
            "bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_ here".into(),
            Builtin::TelegramBotToken,
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_".into(),
        ),
        (
            format!("DATABRICKS_TOKEN=dapi{}-2", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"),
            Builtin::DatabricksToken,
            format!("dapi{}-2", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"),
        ),
        (
            format!("{{\"type\": \"service_account\", \"private_key_id\": \"{}\"}}", "0a1b2c3d4e".repeat(4)),
            Builtin::GcpServiceAccount,
            "0a1b2c3d4e".repeat(4),
        ),
    ];
    for (t, ty, want) in cases {
        let got = find_all(&t);
        // A keyword's generic finding over the same value may come too;
        // the engine keeps the higher-scored, specific one.
        let specific: Vec<_> = got
            .iter()
            .filter(|(b, _)| *b != Builtin::GenericSecret)
            .collect();
        assert_eq!(specific, [&(ty, want)], "{t}: {got:?}");
    }
    // Near misses: a prefix without the shape that follows it.
    for neg in [
        "AIzaSyShort",
        "the hf_model_name field",
        "sk_live_short",
        "glpat-short",
        "npm_install_hint",
        "SG.short.value",
        "skip the dapi docs",
        "version 12:AAB",
        "twilio costs SKU 1234",
        "aws_secret_access_key = changeme",
    ] {
        assert!(find_all(neg).is_empty(), "{neg}: {:?}", find_all(neg));
    }
}

#[test]
fn pem_blocks() {
    let t = "k: -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- done";
    assert_eq!(
        find_all(t)[0].1,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
    );
    let open = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz";
    assert_eq!(find_all(open)[0].1, open, "unterminated: to the end");
    assert!(find_all("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----").is_empty());
}

#[test]
fn keyword_values() {
    assert_eq!(find_all("password: Tr0ub4dor&3")[0].1, "Tr0ub4dor&3");
    assert_eq!(
        find_all("export API_KEY=\"9fQ2xL7pZ0bK4mW8vR3t\"")[0].1,
        "9fQ2xL7pZ0bK4mW8vR3t"
    );
    assert_eq!(
        find_all("the client secret is aB3dE5gH7jK9mN1pQ3")[0].1,
        "aB3dE5gH7jK9mN1pQ3"
    );
    // Words of mixed case with digits are not an identifier.
    assert_eq!(
        find_all("secret: x9Fq_Lm27_pQ8z_Wv41")[0].1,
        "x9Fq_Lm27_pQ8z_Wv41"
    );
    for neg in [
        "the password is strong",
        "max tokens: 4096",
        "key: value",
        "the keyboard is 12345678",
        "token = ${TOKEN}",
        "password: ********",
        "desk-top sk-short",
        "api key: https://example.com/docs/keys",
        "auth-svc: ssn_invalid_range",
        "token: refresh_token_expired_v2",
        "secret = DATABASE_URL_FROM_ENV",
        "auth: user-service.default.svc",
    ] {
        assert!(find_all(neg).is_empty(), "{neg}: {:?}", find_all(neg));
    }
}
