"""What the tests and the benchmarks share: fakes of what Conjunction talks to, and helpers to run
it for real.

- `github_server`: the fake GitHub as an HTTP server on loopback, with faults, latency and
  GitHub's limits;
- `memoryhost`: an in-memory code host and runner that records every call;
- `server_process`: `python app.py` as a real process on a free port;
- `fleet`: one upstream with many downstreams seeded into a server's database, and what GitHub
  sends about them;
- `payloads`: GitHub's documented payloads (`tests/fixtures/`), pointed at a repository;
- `signing`: webhook deliveries signed as GitHub signs them;
- `databases`: the test PostgreSQL, emptied for a run;
- `keys`: one throwaway RSA key for a GitHub App.

`tests/` and `bench/` import it; it imports neither.
"""
