"""``hookd keys …``: API keys (admin or tenant-scoped). A key is shown once, when created."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from hookd import client
from hookd.cli import _common as common

app = typer.Typer(
    help="Manage API keys: admin keys (every tenant) and tenant keys.", no_args_is_help=True
)

Tenant = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        help="Tenant id (admin keys only may name another tenant than their own).",
        show_default=False,
    ),
]


@app.command("create")
def create(
    tenant: Tenant = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="Create an admin key (every tenant).")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="A label for the key.", show_default=False)
    ] = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Create an API key; prints it (shown only this once).

    Without --tenant or --admin the key is for the caller's tenant (an admin caller's: default).
    """
    if admin and tenant is not None:
        common.fail("--admin and --tenant exclude each other")
    body: dict[str, Any] = {}
    if admin:
        body["tenant_id"] = None
    elif tenant is not None:
        body["tenant_id"] = tenant
    if name is not None:
        body["name"] = name
    created = common.connect(server, api_key).post("/v1/keys", json=body)
    if as_json:
        common.print_json(created)
        return
    scope = "admin (every tenant)" if created["tenant_id"] is None else created["tenant_id"]
    common.success(f"Created API key {created['id']}", ("tenant", scope))
    common.out().print(
        Text.assemble(("API key (shown once): ", "bold"), (created["key"], "bold yellow")),
        soft_wrap=True,
    )


@app.command("list")
def list_(
    tenant: Tenant = None,
    limit: common.Limit = 50,
    cursor: common.Cursor = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """List API keys (their prefixes; a key itself is never shown again)."""
    page = common.connect(server, api_key).get(
        "/v1/keys", params={"tenant_id": tenant, "limit": limit, "cursor": cursor}
    )
    if as_json:
        common.print_json(page)
        return
    if not page["data"]:
        common.out().print(Text("no API keys", style="dim"))
        return
    grid = common.table("id", "prefix", "tenant", "name", "created", "status", flexible=("name",))
    for key in page["data"]:
        revoked = key.get("revoked_at")
        grid.add_row(
            common.text(key["id"]),
            common.text(key["prefix"] + "…"),
            common.text("admin" if key["tenant_id"] is None else key["tenant_id"]),
            common.clip(key.get("name")),
            common.when(key.get("created_at")),
            Text(f"revoked {common.when(revoked)}", style="red")
            if revoked
            else Text("active", style="green"),
        )
    common.out().print(grid)
    common.more(page)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="API key id (key_…).")],
    yes: common.Yes = False,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    if not yes:
        typer.confirm(f"Revoke API key {key_id}? Requests with it will be refused.", abort=True)
    common.connect(server, api_key).delete(client.path_of("v1", "keys", key_id))
    common.success(f"Revoked API key {key_id}")
