"""The campaign builder (issue 19): "New campaign" and "Edit" as one server-rendered form.

The form's input names are the API's field paths (`steps.0.template.body`,
`schedule.timezone`, `limits.ramp.start`), so the request is validated by the same pydantic
models as POST/PATCH /api/v1/campaigns and each error lands beside the input it names.
Without JavaScript "Add step" and "Remove step" are submit buttons that show the form again
with every typed value kept; static/app.js only makes them instant and adds the live SMS
segment count (from the small JSON endpoint below, which uses domain.sms like the API).

A WhatsApp step picks a template from the catalogue; "Use template" shows one input per
parameter it declares (domain.whatsapp_templates.parameter_fields), named
`steps.N.param.<key>`. Their values become Meta's `components` before validation, and the
API's errors on a parameter come back beside its input. Stored components the form cannot
show as they are stay in the JSON textarea, unchanged.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from drumbeat.domain import sms
from drumbeat.domain.channels import Channel
from drumbeat.domain.exceptions import DomainError, NotFound, ValidationFailed
from drumbeat.domain.lifecycle import Status
from drumbeat.domain.roles import Role, allows
from drumbeat.domain.templates import ATTRIBUTE_PREFIX, LEAD_FIELDS, UNSUBSCRIBE_URL
from drumbeat.domain.whatsapp_templates import APPROVED, components_of, form_values, parameter_fields
from drumbeat.schemas import DAYS, CampaignCreate, CampaignUpdate, known_zones
from drumbeat.schemas import error_fields as api_fields
from drumbeat.services import campaigns, integrations
from drumbeat.services import templates as catalogue
from drumbeat.web import present
from drumbeat.web.pages import (
    Session,
    _again,
    _ctx,
    _detail,
    _guard_post,
    _once,
    _page,
    _problem,
    _session,
    _status_of,
    _to_login,
)

router = APIRouter(include_in_schema=False)

EDITABLE = {Status.DRAFT, Status.SCHEDULED, Status.PAUSED}
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
DAY_WORDS = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun"}
CHANNELS = [(c.value, present.CHANNEL_WORDS[c.value]) for c in Channel]
TEMPLATE_KEYS = ("name", "language", "body", "components", "subject", "html", "action", "wait_seconds")
# Which template inputs each channel sends (the others stay in the form, unused).
CHANNEL_KEYS = {"whatsapp": ("name", "language", "body", "components"), "sms": ("body",), "voice": ("body",),
                "email": ("subject", "body", "html"), "linkedin": ("action", "wait_seconds", "body")}
SECTIONS = ("name", "steps", "integration_ids", "schedule", "limits", "failure_policy")
# API paths whose input has another name on the form.
FIRST_VARIANT = re.compile(r"^(steps\.\d+)\.variants\.0(?=\.template|\.weight)")
STEP_TEMPLATE = re.compile(r"^(steps\.\d+)\.template$")
STEP_DELAY = re.compile(r"^(steps\.\d+)\.delay_seconds$")
STEP_COMPONENTS = re.compile(r"^steps\.(\d+)\.template\.components(?:\.(\d+\.parameters\.\d+))?")
ALIASES = {"failure_policy.threshold": "failure_policy.threshold_percent",
           "start_at": "schedule.start_at"}


# --- the form's state --------------------------------------------------------------------------

def blank_step(channel: str = "whatsapp") -> dict:
    return {"channel": channel, "delay": "0", "delay_unit": "minutes", "catalogue": "",
            **{k: "" for k in TEMPLATE_KEYS}, "action": "message", "params": {}, "fields": None,
            "weight": "1", "variants": []}


# A/B variants: the step's own template is variant A (its weight `steps.N.weight`); the
# others are typed in rows named by their API index, `steps.N.variants.K.template.body`
# (K from 1), with their own weight. They take the text inputs of the step's channel.
VARIANT_KEYS = ("name", "language", "subject", "body")


def blank_variant() -> dict:
    return {**{k: "" for k in VARIANT_KEYS}, "weight": "1"}


def blank_state() -> dict:
    return {"name": "", "steps": [blank_step()], "pool": "all", "integration_ids": [],
            "schedule": {"timezone": "UTC", "days": list(DAYS), "window_start": "00:00", "window_end": "24:00",
                         "randomize": False, "start_at": ""},
            "limits": {"daily_cap": "", "weekly_cap": "", "rate_per_second": "", "ramp.start": "",
                       "ramp.increase": "", "ramp.every_days": ""},
            "failure_policy": {"window": "50", "threshold_percent": "50", "min_samples": "20"}}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _delay_fields(seconds: int) -> tuple[str, str]:
    """The largest unit that shows the delay exactly (minutes for 0)."""
    for unit in ("days", "hours", "minutes"):
        if seconds % UNITS[unit] == 0 and (seconds or unit == "minutes"):
            return str(seconds // UNITS[unit]), unit
    return str(seconds), "seconds"


def _local_input(start_at: str | None, zone: str) -> str:
    if not start_at:
        return ""
    at = datetime.fromisoformat(start_at)
    return at.astimezone(ZoneInfo(zone) if zone in known_zones() else ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M")


def state_of(view: dict) -> dict:
    """The form filled with a stored campaign."""
    steps = []
    for step in view["steps"]:
        t = step["template"]
        delay, unit = _delay_fields(step["delay_seconds"])
        row = {**blank_step(step["channel"]), "delay": delay, "delay_unit": unit,
               **{k: _text(t.get(k)) for k in TEMPLATE_KEYS if k != "components"}}
        row["components"] = json.dumps(t["components"], indent=2, ensure_ascii=False) if t.get("components") else ""
        row["action"] = t.get("action") or "message"
        row["catalogue"] = f"{t['name']}|{t['language']}" if t.get("name") and t.get("language") else ""
        if step.get("variants"):
            row["weight"] = str(step["variants"][0]["weight"])
            row["variants"] = [{**{k: _text(v["template"].get(k)) for k in VARIANT_KEYS}, "weight": str(v["weight"])}
                               for v in step["variants"][1:]]
        steps.append(row)
    sch, lim, fp = view["schedule"], view["limits"], view["failure_policy"]
    ramp = lim.get("ramp") or {}
    return {"name": view["name"], "steps": steps,
            "pool": "all" if view["integration_ids"] is None else "chosen",
            "integration_ids": list(view["integration_ids"] or []),
            "schedule": {"timezone": sch["timezone"], "days": list(sch["days"]), "window_start": sch["window_start"],
                         "window_end": sch["window_end"], "randomize": bool(sch["randomize_within_window"]),
                         "start_at": _local_input(sch.get("start_at"), sch["timezone"])},
            "limits": {"daily_cap": _text(lim.get("daily_cap")), "weekly_cap": _text(lim.get("weekly_cap")),
                       "rate_per_second": _text(lim.get("rate_per_second")),
                       "ramp.start": _text(ramp.get("start")), "ramp.increase": _text(ramp.get("increase")),
                       "ramp.every_days": _text(ramp.get("every_days"))},
            "failure_policy": {"window": _text(fp["window"]), "threshold_percent": f"{fp['threshold'] * 100:g}",
                               "min_samples": _text(fp["min_samples"])}}


def read_form(form) -> dict:
    """The typed values, exactly as typed (steps renumbered in their order on the page)."""
    get = lambda key: str(form.get(key, ""))  # noqa: E731
    indices = sorted({int(k.split(".")[1]) for k in form if k.startswith("steps.") and k.count(".") >= 2
                      and k.split(".")[1].isdigit() and len(k.split(".")[1]) < 4})
    steps = []
    for i in indices:
        p = f"steps.{i}."
        row = {"channel": get(p + "channel"), "delay": get(p + "delay").strip(),
               "delay_unit": get(p + "delay_unit"), "catalogue": get(p + "catalogue"),
               **{k: get(p + "template." + k) for k in TEMPLATE_KEYS}, "fields": None,
               "params": {k[len(p + "param."):]: get(k) for k in form if k.startswith(p + "param.")}}
        row["action"] = row["action"] or "message"
        row["weight"] = get(p + "weight").strip() or "1"
        ks = sorted({int(k.split(".")[3]) for k in form if k.startswith(p + "variants.") and k.count(".") >= 4
                     and k.split(".")[3].isdigit() and len(k.split(".")[3]) < 3})
        row["variants"] = [{**{k: get(f"{p}variants.{v}.template.{k}") for k in VARIANT_KEYS},
                            "weight": get(f"{p}variants.{v}.weight").strip()} for v in ks]
        steps.append(row)
    state = blank_state()
    state.update(name=get("name"), steps=steps, pool="chosen" if get("pool") == "chosen" else "all",
                 integration_ids=[str(v) for v in form.getlist("integration_ids")])
    state["schedule"] = {"timezone": get("schedule.timezone"), "days": [str(d) for d in form.getlist("schedule.days")],
                         "window_start": get("schedule.window_start").strip(),
                         "window_end": get("schedule.window_end").strip(),
                         "randomize": bool(form.get("schedule.randomize_within_window")),
                         "start_at": get("schedule.start_at").strip()}
    state["limits"] = {k: get("limits." + k).strip() for k in state["limits"]}
    state["failure_policy"] = {k: get("failure_policy." + k).strip() for k in state["failure_policy"]}
    return state


def _present(values: dict, keys) -> dict:
    # A blank input means "the default" (omitted): pydantic parses what is typed.
    return {k: v for k in keys if (v := values.get(k)) not in ("", None)}


def payload_of(state: dict, problems: list[dict]) -> dict:
    """The API request body the form means. Inputs pydantic cannot see as typed (a delay in
    minutes, the components' JSON, a local start time, a percentage) are converted here, and
    what does not convert is a problem beside its input."""
    steps = []
    for i, row in enumerate(state["steps"]):
        keys = CHANNEL_KEYS.get(row["channel"], ("body",))
        template: dict[str, Any] = _present(row, [k for k in keys if k != "components"])
        if row.get("catalogue") and "|" in row["catalogue"] and "name" in keys:
            name, language = row["catalogue"].split("|", 1)  # the picker fills what was left blank
            template.setdefault("name", name)
            template.setdefault("language", language)
        if row.get("fields") is not None and "components" in keys:  # the parameter form
            template["name"], template["language"] = row["catalogue"].split("|", 1)
            components, row["param_paths"] = components_of(row["fields"], row["params"])
            if components:
                template["components"] = components
        elif "components" in keys and row["components"].strip():
            try:
                template["components"] = json.loads(row["components"])
            except (ValueError, RecursionError):
                problems.append({"field": f"steps.{i}.template.components",
                                 "message": "is not valid JSON (a list of Meta's template components)"})
        step: dict[str, Any] = {"channel": row["channel"], "template": template}
        if row.get("variants"):
            others = [{"template": _present(v, [k for k in VARIANT_KEYS if k in keys]), "weight": v["weight"]}
                      for v in row["variants"]]
            step = {"channel": row["channel"], "variants": [{"template": template, "weight": row["weight"]}, *others]}
        try:
            amount = float(row["delay"] or "0")
            step["delay_seconds"] = round(amount * UNITS.get(row["delay_unit"], 60))
        except (ValueError, OverflowError):
            problems.append({"field": f"steps.{i}.delay", "message": "enter a number"})
        steps.append(step)
    sch = state["schedule"]
    schedule: dict[str, Any] = {"timezone": sch["timezone"] or "UTC", "days": sch["days"],
                                "window_start": sch["window_start"] or "00:00",
                                "window_end": sch["window_end"] or "24:00",
                                "randomize_within_window": sch["randomize"]}
    if sch["start_at"]:
        try:
            local = datetime.fromisoformat(sch["start_at"])
            zone = schedule["timezone"] if schedule["timezone"] in known_zones() else "UTC"
            schedule["start_at"] = local.replace(tzinfo=local.tzinfo or ZoneInfo(zone))
        except ValueError:
            problems.append({"field": "schedule.start_at", "message": "enter a date and time"})
    lim = state["limits"]
    limits: dict[str, Any] = _present(lim, ("daily_cap", "weekly_cap", "rate_per_second"))
    ramp = {k[5:]: v for k, v in lim.items() if k.startswith("ramp.") and v}
    if ramp:
        limits["ramp"] = ramp
    fp = state["failure_policy"]
    policy: dict[str, Any] = _present(fp, ("window", "min_samples"))
    if fp["threshold_percent"]:
        try:
            policy["threshold"] = float(fp["threshold_percent"]) / 100
        except ValueError:
            problems.append({"field": "failure_policy.threshold_percent", "message": "enter a number"})
    ids = state["integration_ids"] if state["pool"] == "chosen" else None
    if ids == []:
        problems.append({"field": "integration_ids", "message": "tick at least one key, or choose all keys"})
    return {"name": state["name"], "steps": steps, "integration_ids": ids, "schedule": schedule,
            "limits": limits, "failure_policy": policy}


# --- errors beside their inputs ----------------------------------------------------------------

def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")


def place_errors(problems: list[dict], state: dict) -> dict[str, list[str]]:
    """{input name: [messages]}: each API field path goes to the input it names, else to the
    nearest enclosing one (a step, a section); the rest of the path stays in the message."""
    inputs = {"name", "integration_ids", "pool", *SECTIONS}
    for i, row in enumerate(state["steps"]):
        inputs |= {f"steps.{i}", f"steps.{i}.channel", f"steps.{i}.delay"}
        inputs |= {f"steps.{i}.template.{k}" for k in TEMPLATE_KEYS}
        inputs |= {f"steps.{i}.param.{f.key}" for f in row.get("fields") or []}
        inputs |= {f"steps.{i}.weight", f"steps.{i}.variants"}
        inputs |= {f"steps.{i}.variants.{k}.{name}" for k in range(1, len(row.get("variants") or []) + 1)
                   for name in ("weight", *(f"template.{key}" for key in VARIANT_KEYS))}
    inputs |= {f"schedule.{k}" for k in ("timezone", "days", "window_start", "window_end", "start_at")}
    inputs |= {f"limits.{k}" for k in state["limits"]} | {f"failure_policy.{k}" for k in state["failure_policy"]}
    out: dict[str, list[str]] = {}
    for problem in problems:
        path = re.sub(r"\[(\d+)\]", r".\1", problem["field"])  # the catalogue check writes steps[0]
        path = ALIASES.get(path) or STEP_DELAY.sub(r"\1.delay", path)
        path = FIRST_VARIANT.sub(r"\1", path)  # variant A is the step's own template and weight
        path = STEP_TEMPLATE.sub(r"\1", path)  # a whole-template problem belongs to its step
        message = _clean(problem["message"])
        if (param := _parameter_input(path, state)) is not None:
            name, typed = param
            out.setdefault(name, []).append(message if typed else "this is required")
            continue
        parts = path.split(".")
        where, rest = "", path
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in inputs:
                where, rest = ".".join(parts[:n]), ".".join(parts[n:])
                break
        out.setdefault(where, []).append(f"{rest}: {message}" if rest else message)
    return out


def _parameter_input(path: str, state: dict) -> tuple[str, bool] | None:
    """(input name, whether it was filled) of an API error on a parameter the parameter
    form made; its other component problems belong to the step."""
    found = STEP_COMPONENTS.match(path)
    if found is None or int(found[1]) >= len(state["steps"]):
        return None
    row = state["steps"][int(found[1])]
    if row.get("fields") is None:
        return None
    key = row.get("param_paths", {}).get(f"components.{found[2]}") if found[2] else None
    if key is None:
        return f"steps.{found[1]}", True
    return f"steps.{found[1]}.param.{key}", bool(row["params"].get(key, "").strip())


def _plain(error: dict) -> dict:
    # A blank required input says so in words, not as pydantic's "at least 1 item".
    if error["type"] in ("too_short", "string_too_short", "missing") and error.get("input") in ("", None, []):
        return {**error, "msg": "this is required"}
    return error


def _validated(model, payload: dict, problems: list[dict]):
    try:
        body = model.model_validate(payload)
    except ValidationError as exc:
        problems.extend(f for e in exc.errors() for f in api_fields(_plain(e)))
        return None
    return None if problems else body


# --- what the page shows -----------------------------------------------------------------------

def field_labels(state: dict) -> dict[str, str]:
    labels = {"name": "Name", "steps": "Steps", "integration_ids": "Keys", "schedule": "Schedule",
              "schedule.timezone": "Time zone", "schedule.days": "Days", "schedule.window_start": "Window start",
              "schedule.window_end": "Window end", "schedule.start_at": "Start time", "limits": "Limits",
              "limits.daily_cap": "Daily cap", "limits.weekly_cap": "Weekly cap",
              "limits.rate_per_second": "Sends per second", "limits.ramp.start": "Ramp: first day",
              "limits.ramp.increase": "Ramp: increase", "limits.ramp.every_days": "Ramp: every … days",
              "failure_policy": "Failure policy", "failure_policy.window": "Judged sends",
              "failure_policy.threshold_percent": "Failure share", "failure_policy.min_samples": "Fewest sends"}
    words = {"name": "Template name", "language": "Language", "body": "Message text", "components": "Components",
             "subject": "Subject", "html": "HTML", "action": "LinkedIn action", "wait_seconds": "Wait (seconds)"}
    for i, row in enumerate(state["steps"]):
        labels |= {f"steps.{i}.param.{f.key}": f"Step {i + 1} · {f.label}" for f in row.get("fields") or []}
        labels[f"steps.{i}"] = f"Step {i + 1}"
        labels[f"steps.{i}.channel"] = f"Step {i + 1} · Channel"
        labels[f"steps.{i}.delay"] = f"Step {i + 1} · Delay"
        for key, word in words.items():
            labels[f"steps.{i}.template.{key}"] = f"Step {i + 1} · {word}"
        labels[f"steps.{i}.weight"] = f"Step {i + 1} · Variant A weight"
        labels[f"steps.{i}.variants"] = f"Step {i + 1} · Variants"
        for k in range(1, len(row.get("variants") or []) + 1):
            name = chr(ord("A") + k)
            labels[f"steps.{i}.variants.{k}.weight"] = f"Step {i + 1} · Variant {name} weight"
            for key in VARIANT_KEYS:
                labels[f"steps.{i}.variants.{k}.template.{key}"] = f"Step {i + 1} · Variant {name} {words[key].lower()}"
    return labels


def sms_size(text: str) -> dict:
    size = sms.measure(text)
    view = {"encoding": size.encoding, "segments": size.segments, "units": size.units,
            "max_segments": sms.MAX_SEGMENTS, "too_long": size.segments > sms.MAX_SEGMENTS}
    view["text"] = f"{present._sms_text(view)} as written" + (
        f" — too long: at most {sms.MAX_SEGMENTS} segments are sent" if view["too_long"] else "")
    return view


def _keys_and_catalogue(request: Request, s: Session) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """The workspace's keys; the picker's options (every template of each WhatsApp key's
    catalogue, only APPROVED ones selectable); the approved entries by picker value."""
    ctx = _ctx(request)
    keys = integrations.list_integrations(ctx, s.principal)
    options: list[dict] = []
    entries: dict[str, dict] = {}
    for key in keys:
        if key["provider"] != "whatsapp_cloud":
            continue
        for t in catalogue.list_templates(ctx, s.principal, key["id"]):
            value, approved = f"{t['name']}|{t['language']}", t["status"] == APPROVED
            if approved:
                entries.setdefault(value, t)
            words = present.parameter_text(t["parameters"]) if approved else \
                f"{present.template_status_label(t['status'])}: not selectable"
            options.append({"value": value, "key": key["label"], "disabled": not approved,
                            "text": f"{t['name']} ({t['language']}) · {words}",
                            "parameters": present.parameter_text(t["parameters"])})
    return keys, options, entries


def with_parameter_forms(state: dict, entries: dict[str, dict], chosen: int | None = None) -> None:
    """Give each WhatsApp step whose picker names an approved template its parameter
    form (row["fields"]), filled from what was typed or from its components when the form
    shows them exactly. Components the form cannot show stay as JSON, unless "Use
    template" was pressed on that step (`chosen`)."""
    for i, row in enumerate(state["steps"]):
        entry = entries.get(row["catalogue"]) if row["channel"] == "whatsapp" else None
        row["fields"] = None
        if entry is None:
            continue
        fields = parameter_fields(entry)
        if not row["params"] and row["components"].strip():
            try:
                values = form_values(fields, json.loads(row["components"]))
            except (ValueError, RecursionError):
                values = None
            if values is None and i != chosen:
                continue
            row["params"] = values or {}
        row["fields"], row["components"] = fields, ""
        row["name"], row["language"] = row["catalogue"].split("|", 1)


def _form_page(request: Request, s: Session, state: dict, *, view: dict | None = None, status: int = 200,
               problems: list[dict] | None = None, focus: str = "") -> Response:
    keys, options, entries = _keys_and_catalogue(request, s)
    with_parameter_forms(state, entries)
    errors = place_errors(problems or [], state)
    labels = field_labels(state)
    campaign_status = view["status"] if view else "draft"
    for row in state["steps"]:
        row["sms"] = sms_size(row["body"]) if row["channel"] == "sms" and row["body"] else None
    return _page(request, s, "builder.html", status, state=state, view=view, errors=errors,
                 summary=[(name, labels.get(name, name or "Form"), m) for name, ms in errors.items() for m in ms],
                 channels=CHANNELS, channel_words=present.CHANNEL_WORDS, units=list(UNITS), days=DAY_WORDS,
                 zones=sorted(known_zones()), keys=keys,
                 catalogue_options=options, focus=focus,
                 variables=[*LEAD_FIELDS, ATTRIBUTE_PREFIX + "<name>", UNSUBSCRIBE_URL],
                 steps_fixed=campaign_status != "draft", structure_fixed=campaign_status == "scheduled",
                 action=f"/campaigns/{quote(view['id'], safe='')}/edit" if view else "/campaigns/new")


def _refused_start(request: Request, s: Session, campaign_id: str, exc: DomainError) -> Response:
    """Saved, but the start was refused: the campaign's page with each gate in words."""
    alert = {"message": f"Saved as a draft, but not started: {exc.message}", "code": exc.code,
             "gates": present.gates_view(exc.details.get("gates", []))}
    c = _detail(_ctx(request), s, campaign_id)
    return _page(request, s, "campaign.html", 409, c=c, alert=alert, reasons=present.EXPLANATION_TEXTS)


def _operator(request: Request) -> Session | Response:
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not allows(s.principal.role, Role.OPERATOR):
        return _problem(request, s, "forbidden", "building a campaign needs the operator role", 403)
    return s


# --- routes ------------------------------------------------------------------------------------

@router.get("/campaigns/new", response_class=HTMLResponse)
def new_campaign(request: Request):
    s = _operator(request)
    if not isinstance(s, Session):
        return s
    return _form_page(request, s, blank_state())


def _edit_view(request: Request, s: Session, campaign_id: str) -> dict | Response:
    try:
        view = campaigns.get_campaign(_ctx(request), s.principal, campaign_id)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such campaign in this workspace.", 404)
    if view["status"] not in EDITABLE:
        word = present.STATUS_LABELS.get(view["status"], view["status"]).lower()
        return _problem(request, s, "invalid_transition", f"This campaign is {word}: only a draft, scheduled "
                                                          "or paused campaign can be edited.", 409)
    return view


@router.get("/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
def edit_campaign(request: Request, campaign_id: str):
    s = _operator(request)
    if not isinstance(s, Session):
        return s
    view = _edit_view(request, s, campaign_id)
    if not isinstance(view, dict):
        return view
    return _form_page(request, s, state_of(view), view=view)


@router.post("/campaigns/new")
async def create_campaign(request: Request):
    return await _submit(request, None)


@router.post("/campaigns/{campaign_id}/edit")
async def update_campaign(request: Request, campaign_id: str):
    return await _submit(request, campaign_id)


async def _submit(request: Request, campaign_id: str | None) -> Response:
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    s, ctx = guard, _ctx(request)
    view = None
    if campaign_id is not None:
        found = await run_in_threadpool(_edit_view, request, s, campaign_id)
        if not isinstance(found, dict):
            return found
        view = found
    state = read_form(form)
    op = str(form.get("op", "draft"))
    if view and view["status"] != "draft":  # the stored steps' channels and delays stay (the API's rule)
        state["steps"] = _keep_structure(state["steps"], state_of(view)["steps"])
        if op == "add" or op.startswith(("remove:", "variant:", "unvariant:")):
            return await run_in_threadpool(lambda: _form_page(request, s, state, view=view))
    if op == "add":
        state["steps"].append(blank_step(state["steps"][-1]["channel"] if state["steps"] else "whatsapp"))
        return await run_in_threadpool(lambda: _form_page(request, s, state, view=view))
    elif op.startswith("variant:"):  # one more variant of a step (at most five in all)
        index = op[8:]
        if index.isdigit() and int(index) < len(state["steps"]) and len(state["steps"][int(index)]["variants"]) < 4:
            state["steps"][int(index)]["variants"].append(blank_variant())
        return await run_in_threadpool(lambda: _form_page(request, s, state, view=view))
    elif op.startswith("unvariant:"):
        index, _, k = op[10:].partition(":")
        if index.isdigit() and k.isdigit() and int(index) < len(state["steps"]) \
                and 1 <= int(k) <= len(state["steps"][int(index)]["variants"]):
            del state["steps"][int(index)]["variants"][int(k) - 1]
        return await run_in_threadpool(lambda: _form_page(request, s, state, view=view))
    elif op.startswith("remove:"):
        index = op[7:]
        if index.isdigit() and int(index) < len(state["steps"]):
            del state["steps"][int(index)]
        return await run_in_threadpool(lambda: _form_page(request, s, state, view=view))
    entries = (await run_in_threadpool(_keys_and_catalogue, request, s))[2]
    if op.startswith("template:"):  # "Use template": its parameter form, nothing saved
        index = int(op[9:]) if op[9:].isdigit() else -1
        with_parameter_forms(state, entries, chosen=index)
        fields = state["steps"][index].get("fields") if 0 <= index < len(state["steps"]) else None
        focus = f"steps.{index}.param.{fields[0].key}" if fields else ""
        return await run_in_threadpool(lambda: _form_page(request, s, state, view=view, focus=focus))
    with_parameter_forms(state, entries)

    problems: list[dict] = []
    payload = payload_of(state, problems)
    start_at = payload["schedule"].get("start_at")
    if op == "schedule" and start_at is None and not any(p["field"] == "schedule.start_at" for p in problems):
        problems.append({"field": "schedule.start_at", "message": "give a start time to schedule the campaign"})
    try:
        if view is None:
            body = _validated(CampaignCreate, payload, problems)
        else:
            if view["status"] == "scheduled":
                del payload["steps"]  # steps change only in a draft
            body = _validated(CampaignUpdate, payload, problems)
        if body is None:
            return await run_in_threadpool(lambda: _form_page(request, s, state, view=view, status=422,
                                                              problems=problems))
        if view is None:  # a new campaign: once per form (pages._once), the start or schedule with it
            done = await run_in_threadpool(_once, request, s, str(form.get("form_nonce", "")),
                                           lambda c: _save_and_go(c, s, None, body, op),
                                           lambda r: f"/campaigns/{quote(r[0]['id'], safe='')}")
            if done.repeated:
                return _again(request, s, done, "/campaigns")
            assert done.result is not None
            saved, refusal = done.result
        else:
            saved, refusal = await run_in_threadpool(_save_and_go, ctx, s, view, body, op)
    except ValidationFailed as exc:  # the key pool or the template catalogue
        refused = exc.fields
        return await run_in_threadpool(lambda: _form_page(request, s, state, view=view, status=422,
                                                          problems=refused))
    except DomainError as exc:
        return _problem(request, s, exc.code, exc.message, _status_of(exc), exc.details)
    target = f"/campaigns/{quote(saved['id'], safe='')}"
    try:
        if refusal is not None:
            raise refusal
    except ValidationFailed as exc:
        refused = exc.fields
        return await run_in_threadpool(lambda: _form_page(
            request, s, state, view=campaigns.get_campaign(ctx, s.principal, saved["id"]), status=422,
            problems=refused))
    except DomainError as exc:
        return await run_in_threadpool(_refused_start, request, s, saved["id"], exc)
    return RedirectResponse(target, status_code=303)


def _keep_structure(typed: list[dict], stored: list[dict]) -> list[dict]:
    """A scheduled or paused campaign keeps its steps' channels and delays: only the
    templates typed are taken."""
    out = []
    for i, row in enumerate(stored):
        mine = typed[i] if i < len(typed) else row
        typed_variants = mine.get("variants") or []
        variants = [{**(typed_variants[k] if k < len(typed_variants) else v), "weight": v["weight"]}
                    for k, v in enumerate(row["variants"])]  # their number and weights are frozen too
        out.append({**mine, "channel": row["channel"], "delay": row["delay"], "delay_unit": row["delay_unit"],
                    "weight": row["weight"], "variants": variants})
    return out


def _save_and_go(ctx, s: Session, view: dict | None, body, op: str) -> tuple[dict, DomainError | None]:
    """Saves, then starts or schedules as asked: a refused start keeps the saved campaign
    (the refusal is returned, not raised, so that a new campaign's form nonce is kept too)."""
    saved = _save(ctx, s, view, body)
    try:
        if op == "start" and saved["status"] in ("draft", "scheduled"):
            campaigns.start(ctx, s.principal, saved["id"])
        elif op == "schedule" and saved["status"] == "draft":
            campaigns.schedule(ctx, s.principal, saved["id"], body.schedule.start_at)
    except DomainError as exc:
        return saved, exc
    return saved, None


def _save(ctx, s: Session, view: dict | None, body) -> dict:
    if body.integration_ids:
        integrations.check_ids(ctx, s.principal, body.integration_ids)
    if view is None:
        return campaigns.create_campaign(ctx, s.principal, body.stored())
    return campaigns.update_campaign(ctx, s.principal, view["id"], body.stored())


@router.post("/campaigns/builder/sms-size")
async def sms_size_json(request: Request):
    """The segment count of an SMS text, for the builder's live counter (any signed-in user)."""
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.VIEWER)
    if not isinstance(guard, Session):
        return guard
    return JSONResponse(sms_size(str(form.get("text", ""))[:100_000]))
