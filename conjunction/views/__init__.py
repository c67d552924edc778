"""The read side: what the API and the pages show, as a caller may see it. It only reads.

- `api`: the JSON of `/api/v1`: an event's trace, a project's view;
- `pages`: the dashboard's home and project page, and the dependency graph's projects and edges;
- `event_tree`: the event page's tree of every run from one origin;
- `sources`: upstream successes with their downstream runs and the rows of the reports on
  their commits (pages, API, badges);
- `visibility`: who may see what: private projects, `PRIVATE`, the set hidden from a caller;
- `session`: the session one answer reads through.

Nothing here imports the engine (`tests/test_read_side.py`). What both sides read the same way
lives in modules neither owns: `conjunction.history` (a pair's earlier runs and last pass, a run's
upstream build, the runs below an event, culprit searches) and `conjunction.tally` (the rows of a
commit's report, their count and the words for it), so every page says what the report says.
"""
