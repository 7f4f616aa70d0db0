"""A local SMTP receiver for the alert tests: Debian's python3-aiosmtpd
with STARTTLS required and AUTH PLAIN/LOGIN checked, each message written
to a directory as NNNN.eml.

usage: smtpd.py ADDR PORT OUTDIR CERT KEY USER PASSWORD
"""
import itertools
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

addr, port, outdir, cert, key, user, password = sys.argv[1:8]
seq = itertools.count()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(outdir, "%04d.eml" % next(seq))
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        print("received", path, "from", envelope.mail_from, "to", ",".join(envelope.rcpt_tos), "tls", session.ssl is not None, flush=True)
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() and auth_data.password == password.encode()
    print("auth", mechanism, "ok" if ok else "refused", flush=True)
    return AuthResult(success=ok, handled=False)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Handler(), hostname=addr, port=int(port), tls_context=ctx, require_starttls=True,
               authenticator=authenticate, auth_require_tls=True)
c.start()
print("listening", addr, port, flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
c.stop()
