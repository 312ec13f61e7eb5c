"""An aiohttp application served by netstack on a TAP device, to the Linux kernel in a network
namespace of its own (root: CAP_NET_ADMIN and CAP_SYS_ADMIN; iproute2 and curl).

    sudo python examples/aiohttp_tap.py             # serve, fetch once with curl, stop
    sudo python examples/aiohttp_tap.py --forever   # ... and keep serving until Ctrl-C

A fresh namespace gets the kernel's side of a TAP device (198.18.0.1/24); netstack holds the
other side as 198.18.0.2/24 and serves the application there. The namespace has no other
interface and no route, so nothing reaches the machine's network, and it is deleted (with the
device) on the way out. aiohttp's ``web.Server`` is a protocol factory for ``create_server``
(aiohttp's low-level server); ``AppRunner.server`` is the application's.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

import netstack
from netstack.netns import Namespace, open_tap_in_namespace

PORT = 8080


async def hello(request: web.Request) -> web.Response:
    name = request.query.get("name", "world")
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return web.Response(text=f"hello {name}, from aiohttp on netstack (you are {peer[0]})\n")


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=body, content_type="application/octet-stream")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/echo", echo)
    return app


async def main(forever: bool) -> int:
    with Namespace.create() as namespace:
        link = open_tap_in_namespace(namespace)  # the kernel is 198.18.0.1/24 there
        async with await netstack.Stack.open(link, ipv4="198.18.0.2/24") as stack:
            runner = web.AppRunner(make_app())
            await runner.setup()
            assert runner.server is not None
            server = await stack.create_server(runner.server, port=PORT)
            url = f"http://198.18.0.2:{PORT}"
            print(f"serving {url}/ to namespace {namespace.name}", flush=True)
            try:
                # The kernel's own HTTP client, in the namespace; awaited, so the loop (and
                # with it netstack) keeps running while curl talks to it.
                page = await namespace.arun("curl", "-sS", "--max-time", "10", f"{url}/?name=curl")
                print(f"curl {url}/?name=curl -> {page.stdout.strip()}")
                posted = await namespace.arun(
                    "curl", "-sS", "--max-time", "10", "--data-binary", "@-", f"{url}/echo",
                    input="x" * 100_000,
                )  # fmt: skip
                print(f"curl POST {url}/echo (100000 bytes) -> {len(posted.stdout)} bytes back")
                if forever:
                    print(f"try: sudo ip netns exec {namespace.name} curl {url}/", flush=True)
                    await asyncio.Event().wait()
            finally:
                server.close()
                await runner.cleanup()
    return 0 if posted.stdout == "x" * 100_000 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="An aiohttp application on netstack, on a TAP device in a network namespace."
    )
    parser.add_argument("--forever", action="store_true", help="keep serving until Ctrl-C")
    args = parser.parse_args()
    try:
        raise SystemExit(netstack.run(main(args.forever)))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
