"""The edge: Caddy in front of doce, its previews and (later) its sites.

An adapter like `doce.docker`: it imports no domain app. `doce.edge.config` renders the
whole Caddy JSON configuration from plain dataclasses (pure); `doce.edge.admin` talks to
Caddy's admin API over a unix socket; `doce.edge.binary` finds the `caddy` executable;
`doce.edge.routes` is the registry where apps add their routes (projects: previews;
productions: sites) and `doce.edge.sync` renders and loads the configuration.
"""
