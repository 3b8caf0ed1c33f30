"""A test SMTP server (Debian python3-aiosmtpd) for the email handler.

usage: smtpd.py PORT OUT MODE [CERT KEY] [USER PASSWORD]
MODE none | starttls (required before MAIL) | tls (implicit, SMTPS).
Each accepted mail is appended to OUT followed by a line "----".
Prints "ready" once it accepts connections; stops when stdin closes.
"""
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rest = sys.argv[4:]
cert = key = user = password = None
if mode != "none":
    cert, key, rest = rest[0], rest[1], rest[2:]
if rest:
    user, password = rest[0], rest[1]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "ab") as f:
            f.write(envelope.content + b"\n----\n")
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
          and auth_data.password == password.encode())
    return AuthResult(success=ok, handled=False)


ctx = None
if cert:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
# With SMTPS the whole connection is TLS, which aiosmtpd 1.4 does not count
# as "TLS" for AUTH (only STARTTLS): require it only there.
kwargs = {"auth_require_tls": mode == "starttls"}
if user:
    kwargs["authenticator"] = authenticate
if mode == "starttls":
    kwargs["tls_context"] = ctx
    kwargs["require_starttls"] = True


c = Controller(Handler(), hostname="127.0.0.1", port=port,
        ssl_context=ctx if mode == "tls" else None, server_kwargs=kwargs)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
