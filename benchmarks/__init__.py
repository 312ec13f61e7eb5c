"""netstack's benchmarks: ``python -m benchmarks`` prints one JSON object per line per
measurement, each netstack number beside a comparison measured in the same run (the kernel
through asyncio's own sockets, or kernel to kernel over a veth pair). See README.md."""
