"""Generates the labeled PII corpus (tests/pii/corpus.jsonl), deterministically.

Every sample is one short text with the exact spans of the personal data and
secrets in it (UTF-8 byte offsets, as the Rust scanner reports them). Values
come from Faker in many locales; sentences put them in realistic context,
with and without context words. About a third of the samples are hard
negatives: card numbers that fail Luhn, IBANs that fail mod 97, invalid SSNs,
version strings, timestamps, order and ticket ids, phone-like ids, code,
hashes, UUIDs, prose about email without an address.

    python tests/pii/generate.py [--count 6000] [--seed 20261129]

Same seed and Faker version, same file.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
from datetime import date, datetime
from pathlib import Path

from faker import Faker

LOCALES = ["en_US", "en_GB", "en_CA", "en_AU", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "pt_PT", "pl_PL", "sv_SE"]
IBAN_LOCALES = ["de_DE", "fr_FR", "en_GB", "es_ES", "it_IT", "nl_NL", "pt_PT", "pl_PL", "sv_SE"]
CARD_TYPES = ["visa", "mastercard", "amex", "discover", "jcb", "diners", "maestro"]
CARDS = Faker("en_US")

OUT = Path(__file__).with_name("corpus.jsonl")


class Sample:
    """Builds a text from literal pieces and labeled values."""

    def __init__(self) -> None:
        self.text = ""
        self.spans: list[dict] = []

    def add(self, s: str) -> "Sample":
        self.text += s
        return self

    def value(self, s: str, ty: str) -> "Sample":
        start = len(self.text.encode())
        self.text += s
        self.spans.append({"start": start, "end": len(self.text.encode()), "type": ty})
        return self


def pick(r: random.Random, xs):
    return xs[r.randrange(len(xs))]


def luhn_digit(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def group_card(num: str, r: random.Random) -> str:
    style = r.randrange(3)
    if style == 0:
        return num
    sep = " " if style == 1 else "-"
    if len(num) == 15:
        parts = [num[:4], num[4:10], num[10:]]
    else:
        parts = [num[i : i + 4] for i in range(0, len(num), 4)]
    return sep.join(parts)


def rand_token(r: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    while True:
        t = "".join(r.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in t) and any(c.isalpha() for c in t):
            return t


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# === positives ===


def email(f: Faker, r: random.Random, s: Sample) -> None:
    v = pick(r, [f.email, f.free_email, f.company_email, f.safe_email])()
    pick(r, [
        lambda: s.add("Please reply to ").value(v, "email").add(" by Friday."),
        lambda: s.add("Contact: ").value(v, "email"),
        lambda: s.add(f"{f.name()} <").value(v, "email").add(">"),
        lambda: s.add("You can email ").value(v, "email").add(" or call the office."),
        lambda: s.add("cc ").value(v, "email").add(", thanks"),
    ])()


def phone(f: Faker, r: random.Random, s: Sample) -> None:
    v = f.phone_number()
    pick(r, [
        lambda: s.add("Call me at ").value(v, "phone").add(" after 5pm."),
        lambda: s.add("Phone: ").value(v, "phone"),
        lambda: s.add("My mobile number is ").value(v, "phone").add("."),
        lambda: s.add("Reach the front desk on ").value(v, "phone").add(" any time."),
        lambda: s.add(f"{f.name()}, tel. ").value(v, "phone"),
        lambda: s.add("Please text ").value(v, "phone").add(" when you arrive."),
    ])()


def card(f: Faker, r: random.Random, s: Sample) -> None:
    v = group_card(CARDS.credit_card_number(card_type=pick(r, CARD_TYPES)), r)
    pick(r, [
        lambda: s.add("Charge it to my card ").value(v, "credit_card").add(", expiry 09/28."),
        lambda: s.add("Card number: ").value(v, "credit_card"),
        lambda: s.add("I paid with ").value(v, "credit_card").add(" yesterday."),
        lambda: s.add("use ").value(v, "credit_card").add(" for the order"),
    ])()


def ssn(f: Faker, r: random.Random, s: Sample) -> None:
    v = f.ssn()
    pick(r, [
        lambda: s.add("My SSN is ").value(v, "us_ssn").add("."),
        lambda: s.add("Social security number: ").value(v, "us_ssn"),
        lambda: s.add("Employee ").add(f.name()).add(", SSN ").value(v, "us_ssn"),
        lambda: s.add("ssn=").value(v, "us_ssn"),
    ])()


def iban(r: random.Random, s: Sample) -> None:
    f = Faker(pick(r, IBAN_LOCALES))
    f.seed_instance(r.randrange(1 << 30))
    v = f.iban()
    if r.random() < 0.4:
        v = " ".join(v[i : i + 4] for i in range(0, len(v), 4))
    pick(r, [
        lambda: s.add("Please transfer the deposit to IBAN ").value(v, "iban").add("."),
        lambda: s.add("Bank account: ").value(v, "iban"),
        lambda: s.add("Send it to ").value(v, "iban").add(" by Monday."),
    ])()


def ip(f: Faker, r: random.Random, s: Sample) -> None:
    v = pick(r, [f.ipv4, f.ipv4_private, f.ipv4_public, f.ipv6])()
    pick(r, [
        lambda: s.add("The server at ").value(v, "ip_address").add(" is not responding."),
        lambda: s.add("Login from ").value(v, "ip_address").add(" was blocked"),
        lambda: s.add("ping ").value(v, "ip_address"),
        lambda: s.add("Allow traffic from ").value(v, "ip_address").add(" on port 443."),
    ])()


def mac(f: Faker, r: random.Random, s: Sample) -> None:
    v = f.mac_address()
    if r.random() < 0.3:
        v = v.upper().replace(":", "-")
    pick(r, [
        lambda: s.add("Device MAC ").value(v, "mac_address").add(" joined the network."),
        lambda: s.add("Whitelist ").value(v, "mac_address"),
    ])()


def url_credentials(f: Faker, r: random.Random, s: Sample) -> None:
    scheme = pick(r, ["postgres", "mysql", "https", "redis", "amqp", "mongodb", "ftp"])
    user = f.user_name()
    pw = f.password(length=r.randrange(8, 16), special_chars=False)
    host = f.domain_name()
    port = pick(r, ["", ":5432", ":6379", ":8443"])
    v = f"{scheme}://{user}:{pw}@{host}{port}"
    s.add(pick(r, ["Connection string: ", "Use ", "DATABASE_URL="])).value(v, "url_credentials").add(pick(r, ["", "/app", " in staging"]))


def dob(f: Faker, r: random.Random, s: Sample) -> None:
    d = f.date_between_dates(date(1936, 1, 1), date(2007, 12, 31))
    v = pick(r, [
        d.strftime("%Y-%m-%d"),
        d.strftime("%d/%m/%Y"),
        d.strftime("%m/%d/%Y"),
        d.strftime("%d.%m.%Y"),
        d.strftime("%B ") + str(d.day) + d.strftime(", %Y"),
        str(d.day) + d.strftime(" %B %Y"),
    ])
    pick(r, [
        lambda: s.add("I was born on ").value(v, "date_of_birth").add("."),
        lambda: s.add("Date of birth: ").value(v, "date_of_birth"),
        lambda: s.add(f"{f.name()}, DOB ").value(v, "date_of_birth"),
        lambda: s.add("Her birthday is ").value(v, "date_of_birth").add(", so book a table."),
    ])()


def secret(f: Faker, r: random.Random, s: Sample) -> None:
    kind = r.randrange(9)
    if kind == 0:
        s.add("export OPENAI_API_KEY=").value("sk-proj-" + rand_token(r, 48, string.ascii_letters + string.digits + "_-"), "openai_key")
    elif kind == 1:
        s.add("my key is ").value("sk-ant-api03-" + rand_token(r, 93, string.ascii_letters + string.digits + "_-") + "AA", "anthropic_key")
    elif kind == 2:
        s.add("aws_access_key_id = ").value("AKIA" + rand_token(r, 16, string.ascii_uppercase + string.digits), "aws_access_key")
    elif kind == 3:
        s.add("git clone with token ").value("ghp_" + rand_token(r, 36), "github_token")
    elif kind == 4:
        s.add("SLACK_BOT_TOKEN: ").value(f"xoxb-{r.randrange(10**11, 10**12)}-{r.randrange(10**11, 10**12)}-{rand_token(r, 24)}", "slack_token")
    elif kind == 5:
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64url(json.dumps({"sub": str(r.randrange(10**9)), "name": f.name(), "iat": r.randrange(10**9)}).encode())
        sig = b64url(bytes(r.randrange(256) for _ in range(32)))
        s.add("Authorization header carried ").value(f"{header}.{payload}.{sig}", "jwt").add(" in the logs")
    elif kind == 6:
        body = "\n".join(base64.b64encode(bytes(r.randrange(256) for _ in range(48))).decode() for _ in range(4))
        label = pick(r, ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        s.add("key file:\n").value(f"-----BEGIN {label}-----\n{body}\n-----END {label}-----", "private_key").add("\nend")
    elif kind == 7:
        s.add(pick(r, ["password: ", "The password is ", "db_password=", "Passwort: "])).value(f.password(length=r.randrange(10, 18)), "generic_secret")
    else:
        s.add(pick(r, ["API_KEY=", "client_secret: ", "secret = \""])).value(rand_token(r, r.randrange(24, 40)), "generic_secret")


# === hard negatives ===


def negative(f: Faker, r: random.Random, s: Sample) -> None:
    kind = r.randrange(16)
    if kind == 0:
        digits = CARDS.credit_card_number(card_type=pick(r, CARD_TYPES))
        bad = digits[:-1] + str((int(digits[-1]) + 1 + r.randrange(9)) % 10)
        s.add(f"The card {group_card(bad, r)} was declined (invalid number).")
    elif kind == 1:
        g = Faker(pick(r, IBAN_LOCALES))
        g.seed_instance(r.randrange(1 << 30))
        v = g.iban()
        check = (int(v[2:4]) + 1 + r.randrange(90)) % 97 + 2
        s.add(f"IBAN {v[:2]}{check:02d}{v[4:]} failed validation.")
    elif kind == 2:
        area = pick(r, ["000", "666", str(r.randrange(900, 1000))])
        s.add(f"SSN {area}-{r.randrange(10, 99)}-{r.randrange(1000, 9999)} is not a valid number.")
    elif kind == 3:
        s.add(f"Upgrade to version {r.randrange(1, 20)}.{r.randrange(0, 30)}.{r.randrange(0, 99)} (build {r.randrange(1000, 99999)}).")
    elif kind == 4:
        dt = f.date_time_between_dates(datetime(2020, 1, 1), datetime(2029, 12, 31))
        s.add(pick(r, [f"Logged at {dt.isoformat()}Z", f"Meeting moved to {dt:%Y-%m-%d} at {dt:%H:%M}.", f"timestamp={int(dt.timestamp())}"]))
    elif kind == 5:
        s.add(pick(r, [f"Order #{r.randrange(10**9, 10**10)} has shipped.", f"Your order number is {r.randrange(10**9, 10**10)}.",
                       f"Invoice INV-{r.randrange(2020, 2027)}-{r.randrange(1, 99999):05d} is due."]))
    elif kind == 6:
        s.add(pick(r, [f"Ticket {r.randrange(100, 999)}-{r.randrange(100, 999)}-{r.randrange(1000, 9999)}-{r.randrange(10, 99)} was closed.",
                       f"Tracking ID {r.randrange(10**11, 10**12)}", f"SKU {r.randrange(100000, 999999)}-{r.randrange(10, 99)}"]))
    elif kind == 7:
        s.add(pick(r, ["for (int i = 0; i < 10; i++) { sum += a[i] * 2; }", "let x = vec![1, 2, 3]; x[2] = 42;",
                       "@Override public int hashCode() { return 31 * id; }", "if err != nil { return 0, err }",
                       "SELECT id, email FROM users WHERE id = 42 LIMIT 10;", "std::vector<int> v(16, 0);"]))
    elif kind == 8:
        s.add(pick(r, ["Send us an email through the contact form and we will answer.", "Email me later about the offsite.",
                       "Write to support at example dot com.", "His email address changed last week.", "Use user@localhost in dev."]))
    elif kind == 9:
        s.add(f"commit {''.join(r.choice('0123456789abcdef') for _ in range(40))} fixed it; id {f.uuid4()}")
    elif kind == 10:
        s.add(f"We sold {r.randrange(1000, 999999):,} units for ${r.randrange(100, 99999):,}.{r.randrange(0, 99):02d} in {r.randrange(1990, 2030)}.")
    elif kind == 11:
        s.add(f"Room {r.randrange(100, 999)}, floor {r.randrange(1, 40)}, zip {f.postcode()}.")
    elif kind == 12:
        s.add(f"Pi is about 3.{r.randrange(10**5, 10**6)} and the ratio was {r.randrange(0, 100)}.{r.randrange(0, 100)}%.")
    elif kind == 13:
        s.add(f"The password must be at least {r.randrange(8, 16)} characters; rotate your API key every {r.randrange(30, 90)} days.")
    elif kind == 14:
        s.add(f"Release v{r.randrange(1, 9)}.{r.randrange(0, 20)}.{r.randrange(0, 20)}.{r.randrange(0, 99)} ships the new token counter.")
    else:
        s.add(f"{f.sentence(nb_words=12)} {f.sentence(nb_words=10)}")


POSITIVES = ["email", "phone", "card", "ssn", "iban", "ip", "mac", "url", "dob", "secret"]


def generate(count: int, seed: int) -> list[dict]:
    r = random.Random(seed)
    Faker.seed(seed)
    CARDS.seed_instance(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES + ["en_US"]}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(seed + i)
    out = []
    for i in range(count):
        loc = pick(r, LOCALES)
        f = fakers[loc]
        s = Sample()
        if r.random() < 0.35:
            negative(f, r, s)
        else:
            kinds = r.sample(POSITIVES, k=1 if r.random() < 0.7 else 2)
            for j, kind in enumerate(kinds):
                if j:
                    s.add(" " + pick(r, ["Also,", "And", "PS:", "Then"]) + " ")
                if kind == "email":
                    email(f, r, s)
                elif kind == "phone":
                    phone(f, r, s)
                elif kind == "card":
                    card(f, r, s)
                elif kind == "ssn":
                    ssn(fakers["en_US"], r, s)
                elif kind == "iban":
                    iban(r, s)
                elif kind == "ip":
                    ip(f, r, s)
                elif kind == "mac":
                    mac(f, r, s)
                elif kind == "url":
                    url_credentials(f, r, s)
                elif kind == "dob":
                    dob(f, r, s)
                else:
                    secret(f, r, s)
        out.append({"id": i, "locale": loc, "text": s.text, "spans": s.spans})
    return out


def supplement(start: int, seed: int, count: int = 300) -> list[dict]:
    """Classes added after the main corpus was fixed, drawn from their own
    generator so the main corpus stays as it was: IPv4 with a port (the
    address is PII, the port is not) and Cisco-notation MACs, some ending a
    sentence."""
    r = random.Random(seed * 31 + 7)
    f = Faker("en_US")
    f.seed_instance(seed * 31 + 7)
    out = []
    for i in range(count):
        s = Sample()
        if i % 2 == 0:
            v = pick(r, [f.ipv4, f.ipv4_private, f.ipv4_public])()
            port = pick(r, ["443", "8080", "5432", "6379", str(r.randrange(1024, 65536))])
            pick(r, [
                lambda: s.add("Connect to ").value(v, "ip_address").add(f":{port} and retry."),
                lambda: s.add("upstream host=").value(v, "ip_address").add(f":{port} timed out"),
                lambda: s.add("listening on ").value(v, "ip_address").add(f":{port}"),
                lambda: s.add("The proxy at ").value(v, "ip_address").add(f":{port}."),
            ])()
        else:
            h = f.mac_address().replace(":", "")
            v = f"{h[0:4]}.{h[4:8]}.{h[8:12]}"
            pick(r, [
                lambda: s.add("The switch learned ").value(v, "mac_address").add("."),
                lambda: s.add("Port 3 shows ").value(v, "mac_address").add(", then nothing."),
                lambda: s.add("Blocked device ").value(v, "mac_address"),
            ])()
        out.append({"id": start + i, "locale": "en_US", "text": s.text, "spans": s.spans})
    return out


def platform_keys(start: int, seed: int, count: int = 450) -> list[dict]:
    """Key formats of the major platforms, in the places they leak (env
    files, config snippets, chat), and near misses that must stay silent:
    their own generator, so the corpora before them are unchanged."""
    r = random.Random(seed * 37 + 11)
    alnum = string.ascii_letters + string.digits
    tok = alnum + "_-"
    hexd = "0123456789abcdef"
    b64 = alnum + "+/"
    kinds = [
        ("google_api_key", lambda: "AIza" + rand_token(r, 35, tok), ["GOOGLE_API_KEY=", "maps key: ", "use key "]),
        ("aws_secret_key", lambda: rand_token(r, 38, b64) + r.choice(string.ascii_uppercase) + r.choice(string.digits),
         ["aws_secret_access_key = ", "AWS_SECRET_ACCESS_KEY=", '"SecretAccessKey": "']),
        ("huggingface_token", lambda: "hf_" + "".join(r.choice(string.ascii_letters) for _ in range(34)), ["HF_TOKEN=", "huggingface-cli login --token ", "my hf token is "]),
        ("stripe_key", lambda: r.choice(["sk_live_", "sk_test_", "rk_live_"]) + rand_token(r, r.randrange(24, 99), alnum),
         ["STRIPE_SECRET_KEY=", "stripe.api_key = '", "charge with "]),
        ("gitlab_token", lambda: r.choice(["glpat-", "glptt-", "gldt-"]) + rand_token(r, 20, tok), ["GITLAB_TOKEN=", "PRIVATE-TOKEN: ", "clone with "]),
        ("npm_token", lambda: "npm_" + rand_token(r, 36, alnum), ["//registry.npmjs.org/:_authToken=", "NPM_TOKEN=", "publish token "]),
        ("pypi_token", lambda: "pypi-AgEIcHlwaS5vcmc" + rand_token(r, r.randrange(60, 160), tok), ["password = ", "TWINE_PASSWORD=", "upload token "]),
        ("azure_storage_key", None, None),
        ("sendgrid_key", lambda: "SG." + rand_token(r, 22, tok) + "." + rand_token(r, 43, tok), ["SENDGRID_API_KEY=", "mail key ", "apiKey: "]),
        ("twilio_key", lambda: "SK" + rand_token(r, 32, hexd), None),
        ("discord_webhook", lambda: f"https://discord.com/api/webhooks/{r.randrange(10**17, 10**18)}/" + rand_token(r, 68, tok),
         ["post alerts to ", "DISCORD_WEBHOOK=", "webhook: "]),
        ("telegram_bot_token", lambda: f"{r.randrange(10**8, 10**10)}:AA" + rand_token(r, 33, tok), ["TELEGRAM_BOT_TOKEN=", "bot token ", "token: "]),
        ("databricks_token", lambda: "dapi" + rand_token(r, 32, "0123456789abcdefgh"), ["DATABRICKS_TOKEN=", "token = ", "use "]),
        ("gcp_service_account", None, None),
    ]
    negatives = [
        lambda: f"The SKU {rand_token(r, 8, string.ascii_uppercase + string.digits)} is out of stock.",
        lambda: "Set hf_model_name and hf_revision in the config.",
        lambda: f"Version {r.randrange(1, 99)}:{r.randrange(10, 99)} of the AAR file.",
        lambda: "Run npm_config_cache=/tmp npm ci.",
        lambda: "The dapi docs describe the REST endpoints.",
        lambda: f"Order {r.randrange(10**8, 10**9)}:AB ships today.",
        lambda: "AIza is how the prefix starts, nothing more.",
        lambda: "See the stripe sk_live_ prefix in the docs.",
        # A service name and an error code: words, not a secret.
        lambda: f"{pick(r, ['auth-svc', 'token-service', 'secret-store'])}: "
                f"{pick(r, ['ssn_invalid_range', 'refresh_token_expired', 'quota_exceeded_v2', 'INVALID_API_KEY_FORMAT'])}",
    ]
    out = []
    for i in range(count):
        s = Sample()
        if i % 5 == 4:
            s.add(pick(r, negatives)())
        else:
            name, make, leads = kinds[i % len(kinds)]
            if name == "azure_storage_key":
                key = rand_token(r, 86, alnum + "+/") + "=="
                s.add(f"DefaultEndpointsProtocol=https;AccountName={rand_token(r, 10, string.ascii_lowercase + string.digits)};AccountKey=")
                s.value(key, name).add(";EndpointSuffix=core.windows.net")
            elif name == "gcp_service_account":
                s.add('{"type": "service_account", "project_id": "acme", "private_key_id": "')
                s.value(rand_token(r, 40, hexd), name).add('", "client_email": "')
                s.value("ci@acme.iam.gserviceaccount.com", "email").add('"}')
            elif name == "twilio_key":
                s.add(pick(r, ["Twilio API key ", "twilio key: ", "TWILIO_API_KEY="])).value(make(), name)
            else:
                s.add(pick(r, leads)).value(make(), name)
                if leads[0].endswith('"'):
                    s.add('"')
        out.append({"id": start + i, "locale": "en_US", "text": s.text, "spans": s.spans})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=20261129)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    rows = generate(a.count, a.seed)
    rows += supplement(len(rows), a.seed)
    rows += platform_keys(len(rows), a.seed)
    with a.out.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} samples to {a.out}")


if __name__ == "__main__":
    main()
