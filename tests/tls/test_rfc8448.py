"""RFC 8448 section 3 ("Simple 1-RTT Handshake") as test vectors.

Every hex constant below is copied from RFC 8448 section 3 (provenance: RFC 8448, "Example
Handshake Traces for TLS 1.3", section 3): the ephemeral keys, the randoms, the messages,
the records, and the secrets, keys and IVs the key schedule derives. The tests check the key
schedule, the record layer and the wire codecs against them, and drive both machines with
the trace's private keys and randoms injected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from netstack.tls import (
    CipherSuite,
    CloseNotifyReceived,
    DataReceived,
    HandshakeCompleted,
    SessionTicketReceived,
    TLSConfig,
    TLSConnection,
    TLSState,
    wire,
)
from netstack.tls.certs import certificate_key, verify_signature
from netstack.tls.key_schedule import (
    SUITES,
    KeySchedule,
    Transcript,
    derive_secret,
    finished_verify_data,
    hkdf_extract,
    resumption_psk,
    traffic_key_iv,
)
from netstack.tls.record import ContentType, RecordLayer
from netstack.tls.wire import HandshakeType, SignatureScheme


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


PARAMS = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]

# RFC 8448 section 3: {client} create an ephemeral x25519 key pair
CLIENT_PRIVATE = h("49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005")
CLIENT_PUBLIC = h("99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c")
# RFC 8448 section 3: {server} create an ephemeral x25519 key pair
SERVER_PRIVATE = h("b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e")
SERVER_PUBLIC = h("c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f")
CLIENT_RANDOM = h("cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7")
SERVER_RANDOM = h("a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e26928")

# RFC 8448 section 3: {client} construct a ClientHello handshake message
CLIENT_HELLO = h(
    "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113"
    "031302010000910000000b0009000006736572766572ff01000100000a00140012001d001700180019010001"
    "0101020103010400230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae"
    "4d5413691e529aaf2c002b0003020304000d0020001e04030503060302030804080508060401050106010201"
    "0402050206020202002d00020101001c00024001"
)
# RFC 8448 section 3: {client} send handshake record: complete record
CLIENT_HELLO_RECORD = h("16030100c4") + CLIENT_HELLO
# RFC 8448 section 3: {server} construct a ServerHello handshake message
SERVER_HELLO = h(
    "020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e"
    "00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b0002"
    "0304"
)
SERVER_HELLO_RECORD = h("160303005a") + SERVER_HELLO
# RFC 8448 section 3: {server} construct an EncryptedExtensions handshake message
ENCRYPTED_EXTENSIONS = h(
    "080000240022000a00140012001d00170018001901000101010201030104001c0002400100000000"
)
# RFC 8448 section 3: {server} construct a Certificate handshake message
CERTIFICATE = h(
    "0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a864886f70d01010b0500300e"
    "310c300a06035504031303727361301e170d3136303733303031323335395a170d3236303733303031323335"
    "395a300e310c300a0603550403130372736130819f300d06092a864886f70d010101050003818d0030818902"
    "818100b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826d3901a2461eafd2de49a91d015abbc9a"
    "95137ace6c1af19eaa6af98c7ced43120998e187a80ee0ccb0524b1b018c3e0b63264d449a6d38e22a5fda43"
    "0846748030530ef0461c8ca9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a8d88d79f7f1e3f02"
    "03010001a31a301830090603551d1304023000300b0603551d0f0404030205a0300d06092a864886f70d0101"
    "0b05000381810085aad2a0e5b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a5"
    "8c8f8172f9319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102702e608ccae6bec1fc63a42a"
    "99be5c3eb7107c3c54e9b9eb2bd5203b1c3b84e0a8b2f759409ba3eac9d91d402dcc0cc8f8961229ac9187b4"
    "2b4de10000"
)
# RFC 8448 section 3: {server} construct a CertificateVerify handshake message
CERTIFICATE_VERIFY = h(
    "0f000084080400805a747c5d88fa9bd2e55ab085a61015b7211f824cd484145ab3ff52f1fda8477b0b7abc90"
    "db78e2d33a5c141a078653fa6bef780c5ea248eeaaa785c4f394cab6d30bbe8d4859ee511f602957b15411ac"
    "027671459e46445c9ea58c181e818e95b8c3fb0bf3278409d3be152a3da5043e063dda65cdf5aea20d53dfac"
    "d42f74f3"
)
# RFC 8448 section 3: {server} construct a Finished handshake message
SERVER_FINISHED = h("140000209b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718")
# RFC 8448 section 3: {server} send handshake record: complete record
SERVER_FLIGHT_RECORD = h(
    "17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35edf7869fcf40aa40aa2b8ea73"
    "f848a7ca07612ef9f945cb960b4068905123ea78b111b429ba9191cd05d2a389280f526134aadc7fc78c4b72"
    "9df828b5ecf7b13bd9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9d7477609"
    "aee6e122a4cf51427325250c7d0e509289444c9b3a648f1d71035d2ed65b0e3cdd0cbae8bf2d0b227812cbb3"
    "60987255cc744110c453baa4fcd610928d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09"
    "ead686945ba246ab66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b3684596c960bd596eea"
    "520a56a8d650f563aad27409960dca63d3e688611ea5e22f4415cf9538d51a200c27034272968a264ed6540c"
    "84838d89f72c24461aad6d26f59ecaba9acbbb317b66d902f4f292a36ac1b639c637ce343117b659622245317"
    "b49eeda0c6258f100d7d961ffb138647e92ea330faeea6dfa31c7a84dc3bd7e1b7a6c7178af36879018e3f25"
    "2107f243d243dc7339d5684c8b0378bf30244da8c87c843f5e56eb4c5e8280a2b48052cf93b16499a66db7cc"
    "a71e4599426f7d461e66f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edbe5a3766893"
    "6b335583b599186dc5c6918a396fa48a181d6b6fa4f9d62d513afbb992f2b992f67f8afe67f76913fa388cb5"
    "630c8ca01e0c65d11c66a1e2ac4c85977b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c0b3b6"
    "6763038ebba42f3b38edc0399f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b845e275592c12335ee3"
    "40bbc4fddd502784016e4b3be7ef04dda49f4b440a30cb5d2af939828fd4ae3794e44f94df5a631ede42c171"
    "9bfdabf0253fe5175be898e750edc53370d2b"
)
# RFC 8448 section 3: {client} construct a Finished handshake message / send handshake record
CLIENT_FINISHED = h("14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61")
CLIENT_FINISHED_RECORD = h(
    "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46de"
    "b384bd1caeacab6867d726c40546"
)
# RFC 8448 section 3: {server} construct a NewSessionTicket handshake message / record
NEW_SESSION_TICKET = h(
    "040000c90000001efad6aac502000000b22c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a34cb"
    "33fa90bf1b0070ad3c498883c9367c09a2be785abc55cd226097a3a982117283f82a03a143efd3ff5dd36d64"
    "e861be7fd61d2827db279cce145077d454a3664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529513e3da2"
    "677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea617646fac5c03272e970727c621a79141ef5f"
    "7de6505e5bfbc388e93343694093934ae4d3570008002a000400000400"
)
NEW_SESSION_TICKET_RECORD = h(
    "17030300de3a6b8f90414a97d6959c3487680de5134a2b240e6cffac116e95d41d6af8f6b580dcf3d11d63c7"
    "58db289a015940252f55713e061dc13e078891a38efbcf5753ad8ef170ad3c7353d16d9da773b9ca7f2b9fa1"
    "b6c0d4a3d03f75e09c30ba1e62972ac46f75f7b981be63439b2999ce13064615139891d5e4c5b406f16e3fc1"
    "81a77ca475840025db2f0a77f81b5ab05b94c01346755f69232c86519d86cbeeac87aac347d143f9605d64f6"
    "50db4d023e70e952ca49fe5137121c74bc2697687e248746d6df353005f3bce18696129c8153556b3b6c6779"
    "b37bf15985684f"
)
# RFC 8448 section 3: application data, 50 bytes each way, and the closing alerts
APPLICATION_DATA = bytes(range(50))
CLIENT_DATA_RECORD = h(
    "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a"
    "20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4"
)
SERVER_DATA_RECORD = h(
    "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb"
    "501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d"
)
CLIENT_ALERT_RECORD = h("1703030013c9872760655666b74d7ff1153efd6db6d0b0e3")
SERVER_ALERT_RECORD = h("1703030013b58fd67166ebf599d24720cfbe7efa7a8864a9")

# RFC 8448 section 3: the key schedule
SHARED_SECRET = h("8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d")
EARLY_SECRET = h("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
DERIVED_FOR_HANDSHAKE = h("6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba")
HANDSHAKE_SECRET = h("1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")
CLIENT_HS_TRAFFIC = h("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
SERVER_HS_TRAFFIC = h("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
DERIVED_FOR_MASTER = h("43de77e0c77713859a944db9db2590b53190a65b3ee2e4f12dd7a0bb7ce254b4")
MASTER_SECRET = h("18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919")
SERVER_HS_KEY, SERVER_HS_IV = h("3fce516009c21727d0f2e4e86ee403bc"), h("5d313eb2671276ee13000b30")
CLIENT_HS_KEY, CLIENT_HS_IV = h("dbfaa693d1762c5b666af5d950258d01"), h("5bd3c71b836e0b76bb73265f")
CLIENT_AP_TRAFFIC = h("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
SERVER_AP_TRAFFIC = h("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
EXPORTER_MASTER = h("fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50")
SERVER_AP_KEY, SERVER_AP_IV = h("9f02283b6c9c07efc26bb9f2ac92e356"), h("cf782b88dd83549aadf1e984")
CLIENT_AP_KEY, CLIENT_AP_IV = h("17422dda596ed5d9acd890e3c63f5051"), h("5b78923dee08579033e523d9")
RESUMPTION_MASTER = h("7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c")
RESUMPTION_PSK = h("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")

SERVER_FLIGHT = ENCRYPTED_EXTENSIONS + CERTIFICATE + CERTIFICATE_VERIFY + SERVER_FINISHED


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def injected(*chunks: bytes) -> Callable[[int], bytes]:
    """A ``random`` that hands out the trace's values in order, checking their sizes."""
    queue = list(chunks)

    def random(n: int) -> bytes:
        if not queue:
            return bytes(n)  # randomness the trace does not fix (ticket fields)
        chunk = queue.pop(0)
        assert len(chunk) == n
        return chunk

    return random


# -- key exchange and key schedule -------------------------------------------------------------


def test_x25519_keys_and_shared_secret() -> None:
    client = x25519.X25519PrivateKey.from_private_bytes(CLIENT_PRIVATE)
    server = x25519.X25519PrivateKey.from_private_bytes(SERVER_PRIVATE)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert client.public_key().public_bytes(*raw) == CLIENT_PUBLIC
    assert server.public_key().public_bytes(*raw) == SERVER_PUBLIC
    assert client.exchange(server.public_key()) == SHARED_SECRET


def test_key_schedule_secrets() -> None:
    schedule = KeySchedule(PARAMS)
    assert schedule.early_secret == EARLY_SECRET
    empty = sha256(b"")
    assert derive_secret("sha256", EARLY_SECRET, b"derived", empty) == DERIVED_FOR_HANDSHAKE
    schedule.extract_handshake(SHARED_SECRET)
    assert schedule.handshake_secret == HANDSHAKE_SECRET
    hello_hash = sha256(CLIENT_HELLO + SERVER_HELLO)
    assert schedule.handshake_traffic_secrets(hello_hash) == (CLIENT_HS_TRAFFIC, SERVER_HS_TRAFFIC)
    assert derive_secret("sha256", HANDSHAKE_SECRET, b"derived", empty) == DERIVED_FOR_MASTER
    schedule.extract_master()
    assert schedule.master_secret == MASTER_SECRET
    server_finished_hash = sha256(CLIENT_HELLO + SERVER_HELLO + SERVER_FLIGHT)
    assert schedule.application_traffic_secrets(server_finished_hash) == (
        CLIENT_AP_TRAFFIC,
        SERVER_AP_TRAFFIC,
    )
    assert schedule.exporter_master_secret(server_finished_hash) == EXPORTER_MASTER
    client_finished_hash = sha256(CLIENT_HELLO + SERVER_HELLO + SERVER_FLIGHT + CLIENT_FINISHED)
    assert schedule.resumption_master_secret(client_finished_hash) == RESUMPTION_MASTER
    assert resumption_psk("sha256", RESUMPTION_MASTER, b"\x00\x00") == RESUMPTION_PSK


def test_hkdf_extract_with_empty_salt_is_zeros() -> None:
    assert hkdf_extract("sha256", b"", bytes(32)) == EARLY_SECRET


@pytest.mark.parametrize(
    ("secret", "key", "iv"),
    [
        (SERVER_HS_TRAFFIC, SERVER_HS_KEY, SERVER_HS_IV),
        (CLIENT_HS_TRAFFIC, CLIENT_HS_KEY, CLIENT_HS_IV),
        (SERVER_AP_TRAFFIC, SERVER_AP_KEY, SERVER_AP_IV),
        (CLIENT_AP_TRAFFIC, CLIENT_AP_KEY, CLIENT_AP_IV),
    ],
)
def test_traffic_keys_and_ivs(secret: bytes, key: bytes, iv: bytes) -> None:
    assert traffic_key_iv(PARAMS, secret) == (key, iv)


def test_finished_values() -> None:
    through_cv = sha256(CLIENT_HELLO + SERVER_HELLO + SERVER_FLIGHT[: -len(SERVER_FINISHED)])
    assert finished_verify_data("sha256", SERVER_HS_TRAFFIC, through_cv) == SERVER_FINISHED[4:]
    through_sf = sha256(CLIENT_HELLO + SERVER_HELLO + SERVER_FLIGHT)
    assert finished_verify_data("sha256", CLIENT_HS_TRAFFIC, through_sf) == CLIENT_FINISHED[4:]


def test_transcript_hashes_the_messages() -> None:
    transcript = Transcript()
    transcript.add(CLIENT_HELLO)
    transcript.add(SERVER_HELLO)
    assert transcript.digest("sha256") == sha256(CLIENT_HELLO + SERVER_HELLO)
    assert "cb34" not in repr(transcript)


# -- records ---------------------------------------------------------------------------------


def test_record_layer_decrypts_the_server_flight() -> None:
    layer = RecordLayer()
    layer.set_read_secret(PARAMS, SERVER_HS_TRAFFIC)
    layer.receive_data(SERVER_FLIGHT_RECORD)
    record = layer.next_record()
    assert record is not None and record.protected
    assert record.content_type == ContentType.handshake
    assert record.data == SERVER_FLIGHT


@pytest.mark.parametrize(
    ("secret", "content_type", "data", "expected"),
    [
        (CLIENT_HS_TRAFFIC, ContentType.handshake, CLIENT_FINISHED, CLIENT_FINISHED_RECORD),
        (CLIENT_AP_TRAFFIC, ContentType.application_data, APPLICATION_DATA, CLIENT_DATA_RECORD),
    ],
)
def test_record_layer_encrypts_exactly(
    secret: bytes, content_type: ContentType, data: bytes, expected: bytes
) -> None:
    layer = RecordLayer()
    layer.set_write_secret(PARAMS, secret)
    layer.send(content_type, data)
    assert layer.data_to_send() == expected


def test_server_records_after_the_ticket() -> None:
    # The server's application data and alert follow its NewSessionTicket (sequence 0).
    layer = RecordLayer()
    layer.set_write_secret(PARAMS, SERVER_AP_TRAFFIC)
    layer.send(ContentType.handshake, NEW_SESSION_TICKET)
    layer.send(ContentType.application_data, APPLICATION_DATA)
    layer.send(ContentType.alert, b"\x01\x00")
    assert layer.data_to_send() == (
        NEW_SESSION_TICKET_RECORD + SERVER_DATA_RECORD + SERVER_ALERT_RECORD
    )


# -- wire ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "pull", "push"),
    [
        (CLIENT_HELLO, wire.pull_client_hello, wire.push_client_hello),
        (SERVER_HELLO, wire.pull_server_hello, wire.push_server_hello),
        (ENCRYPTED_EXTENSIONS, wire.pull_encrypted_extensions, wire.push_encrypted_extensions),
        (CERTIFICATE, wire.pull_certificate, wire.push_certificate),
        (CERTIFICATE_VERIFY, wire.pull_certificate_verify, wire.push_certificate_verify),
        (SERVER_FINISHED, wire.pull_finished, wire.push_finished),
        (NEW_SESSION_TICKET, wire.pull_new_session_ticket, wire.push_new_session_ticket),
    ],
)
def test_messages_decode_and_encode_byte_for_byte(
    message: bytes, pull: object, push: object
) -> None:
    decoded = wire.parse_message(pull, message[4:])  # type: ignore[call-overload]
    assert wire.encode_message(HandshakeType(message[0]), push, decoded) == message  # type: ignore[call-overload]


def test_client_hello_fields() -> None:
    hello = wire.parse_message(wire.pull_client_hello, CLIENT_HELLO[4:])
    assert hello.random == CLIENT_RANDOM
    assert hello.cipher_suites == [0x1301, 0x1303, 0x1302]
    exts = dict(hello.extensions)
    assert wire.pull_server_name_list(exts[wire.ExtensionType.server_name]) == "server"
    assert wire.pull_client_key_shares(exts[wire.ExtensionType.key_share]) == [
        (wire.Group.x25519, CLIENT_PUBLIC)
    ]
    assert wire.pull_client_supported_versions(exts[wire.ExtensionType.supported_versions]) == [
        0x0304
    ]
    assert wire.pull_psk_modes(exts[wire.ExtensionType.psk_key_exchange_modes]) == [1]


def test_a_client_hello_built_from_the_trace_fields_is_the_trace() -> None:
    E = wire.ExtensionType
    hello = wire.ClientHello(
        random=CLIENT_RANDOM,
        legacy_session_id=b"",
        cipher_suites=[0x1301, 0x1303, 0x1302],
        extensions=[
            (E.server_name, wire.push_server_name_list("server")),
            (0xFF01, b"\x00"),  # renegotiation_info
            (
                E.supported_groups,
                wire.push_uint16_list([0x1D, 0x17, 0x18, 0x19, 0x100, 0x101, 0x102, 0x103, 0x104]),
            ),
            (35, b""),  # session_ticket
            (E.key_share, wire.push_client_key_shares([(wire.Group.x25519, CLIENT_PUBLIC)])),
            (E.supported_versions, wire.push_client_supported_versions([0x0304])),
            (
                E.signature_algorithms,
                wire.push_uint16_list(
                    [0x0403, 0x0503, 0x0603, 0x0203, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501]
                    + [0x0601, 0x0201, 0x0402, 0x0502, 0x0602, 0x0202]
                ),
            ),
            (E.psk_key_exchange_modes, wire.push_psk_modes([1])),
            (E.record_size_limit, wire.push_uint16_body(0x4001)),
        ],
    )
    encoded = wire.encode_message(HandshakeType.client_hello, wire.push_client_hello, hello)
    assert encoded == CLIENT_HELLO


def test_the_certificate_verify_signature_verifies() -> None:
    certificate = wire.parse_message(wire.pull_certificate, CERTIFICATE[4:])
    cert = x509.load_der_x509_certificate(certificate.entries[0].cert_data)
    verify = wire.parse_message(wire.pull_certificate_verify, CERTIFICATE_VERIFY[4:])
    assert verify.algorithm == SignatureScheme.rsa_pss_rsae_sha256
    content = (
        b" " * 64
        + b"TLS 1.3, server CertificateVerify\x00"
        + sha256(CLIENT_HELLO + SERVER_HELLO + ENCRYPTED_EXTENSIONS + CERTIFICATE)
    )
    key = certificate_key(cert)
    assert verify_signature(key, SignatureScheme(verify.algorithm), verify.signature, content)
    assert not verify_signature(
        key, SignatureScheme(verify.algorithm), verify.signature, content[:-1] + b"\x00"
    )


# -- the machines with the trace's keys and randoms ------------------------------------------


def test_server_answers_the_trace_client_hello_with_the_trace_server_hello() -> None:
    from tls_helpers import server_config

    server = TLSConnection(
        server_config("ec"), server_side=True, random=injected(SERVER_PRIVATE, SERVER_RANDOM)
    )
    server.receive_data(CLIENT_HELLO_RECORD, now=0.0)
    out = server.data_to_send()
    assert out.startswith(SERVER_HELLO_RECORD)
    # The rest of its flight is protected with the trace's server handshake keys.
    reader = RecordLayer()
    reader.set_read_secret(PARAMS, SERVER_HS_TRAFFIC)
    reader.receive_data(out[len(SERVER_HELLO_RECORD) :])
    record = reader.next_record()
    assert record is not None and record.content_type == ContentType.handshake
    assert record.data[0] == HandshakeType.encrypted_extensions
    assert server.state is TLSState.WAIT_FINISHED


def test_client_runs_the_trace_to_the_byte() -> None:
    config = TLSConfig.client(verify=False, groups=["x25519"])
    client = TLSConnection(
        config,
        server_side=False,
        server_hostname="server",
        random=injected(CLIENT_RANDOM, CLIENT_PRIVATE),
    )
    client.start(now=1.0)
    own_hello = client.data_to_send()
    own = wire.parse_message(wire.pull_client_hello, own_hello[9:])
    assert own.random == CLIENT_RANDOM
    assert dict(own.extensions)[wire.ExtensionType.key_share] == wire.push_client_key_shares(
        [(wire.Group.x25519, CLIENT_PUBLIC)]
    )
    # Our ClientHello offers other extensions than the trace's; continue as if the trace's
    # ClientHello had been sent (same random, same key share), so that every later byte
    # must match the trace.
    client._transcript = Transcript()
    client._transcript.add(CLIENT_HELLO)
    client._sent_extensions |= {t for t, _ in own.extensions} | {
        t for t, _ in wire.parse_message(wire.pull_client_hello, CLIENT_HELLO[4:]).extensions
    }

    client.receive_data(SERVER_HELLO_RECORD + SERVER_FLIGHT_RECORD, now=1.0)
    completed = client.next_event()
    assert isinstance(completed, HandshakeCompleted)
    assert completed.cipher == ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)
    assert client.data_to_send() == CLIENT_FINISHED_RECORD
    assert client._resumption_master == RESUMPTION_MASTER

    client.receive_data(NEW_SESSION_TICKET_RECORD, now=1.0)
    ticket = client.next_event()
    assert isinstance(ticket, SessionTicketReceived)
    assert ticket.session.psk == RESUMPTION_PSK
    assert ticket.session.lifetime == 30

    client.send_data(APPLICATION_DATA)
    assert client.data_to_send() == CLIENT_DATA_RECORD
    client.receive_data(SERVER_DATA_RECORD + SERVER_ALERT_RECORD, now=1.0)
    assert client.next_event() == DataReceived(APPLICATION_DATA)
    assert client.next_event() == CloseNotifyReceived()
    client.close()
    assert client.data_to_send() == CLIENT_ALERT_RECORD
