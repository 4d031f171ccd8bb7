"""HTTPS for the emulator (``--tls DIR``): a certificate for the loopback address, and a CA
bundle as a client's would be on AWS.

AWS's endpoints speak only HTTPS; a client pays a TLS handshake per new connection and,
with botocore and urllib3, the loading of its CA bundle (see ``custodian_ext.perf``
``loaded_ca_once``). The bundle written here is botocore's own with the emulator's
certificate added, so a client verifies the emulator as it verifies AWS, at the same
cost. Test and benchmark only.
"""
import datetime
import functools
import ipaddress
import os

CERT, KEY, BUNDLE = 'cert.pem', 'key.pem', 'ca-bundle.pem'


def make(folder):
    """Write the server's certificate and key, and the clients' CA bundle, into ``folder``;
    returns the bundle's path. An RSA-2048 key, as AWS's endpoints present."""
    from botocore.httpsession import DEFAULT_CA_BUNDLE
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'custodian-ext emulator')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address('127.0.0.1')),
                x509.DNSName('localhost')]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    with open(os.path.join(folder, CERT), 'wb') as fh:
        fh.write(pem)
    with open(os.open(os.path.join(folder, KEY), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              'wb') as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    with open(DEFAULT_CA_BUNDLE, 'rb') as fh:
        bundle = fh.read()
    with open(os.path.join(folder, BUNDLE), 'wb') as fh:
        fh.write(bundle.rstrip(b'\n') + b'\n' + pem)
    return os.path.join(folder, BUNDLE)


def server_context(folder):
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(folder, CERT), os.path.join(folder, KEY))
    return context


@functools.lru_cache(maxsize=None)
def client_context(bundle):
    """An SSL context that verifies the emulator with ``bundle`` (its path), loaded once."""
    import ssl
    return ssl.create_default_context(cafile=bundle)
