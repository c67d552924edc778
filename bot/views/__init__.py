"""The read side: what the API and the pages show, as a caller may see it. It only reads.

- `api`: the JSON of `/api/v1`: an event's trace, a project's view;
- `pages`: the dashboard's home and project page, and the dependency graph's projects and edges;
- `event_tree`: the event page's tree of every run from one origin;
- `sources`: upstream successes with their downstream runs and tallies (pages, API, badges);
- `visibility`: who may see what: private projects, `PRIVATE`, the set hidden from a caller;
- `history`: a run's upstream build, the runs below an event, the pair's last pass;
- `session`: the session one answer reads through.

Only `event_tree` takes anything from the engine: the report's own wording of its commit
status (`bot.engine.reports.describe`), so the event page says what the report says.
"""
