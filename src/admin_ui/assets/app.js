// Rollcall's admin screens: plain JavaScript over the REST API (/api/v1), no framework.
// The token lives in sessionStorage only, so it ends with the browser session.

const TOKEN_KEY = "rollcall.token";
const WORKSPACE_KEY = "rollcall.workspace";
const ROLES = ["viewer", "builder", "admin"];
// The broker's directory types for the providers the product page lists; others show as the broker names them.
const PROVIDERS = {
  "azure scim v2.0": "Entra ID SCIM",
  "gsuite directory": "Google Workspace",
  "jump cloud scim v2.0": "JumpCloud SCIM",
  "onelogin scim v2.0": "OneLogin SCIM",
  "okta scim v2.0": "Okta SCIM",
  "rippling scim v2.0": "Rippling SCIM",
  "cyberark scim v2.0": "CyberArk SCIM",
  "pingfederate scim v2.0": "PingFederate SCIM",
  "generic scim v2.0": "Generic SCIM",
  "scim": "SCIM",
};

const session = { caller: null, workspaces: [], workspace: null };
const main = document.getElementById("main");
const dialog = document.getElementById("dialog");

// ---------------------------------------------------------------------------------------------
// Building the page

/** An element with attributes (`on…` keys are listeners) and children (text, nodes, arrays). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** A table with a caption, column headings and rows of cells; it scrolls sideways on its own when wide. */
function table(caption, headings, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headings.length }, "None.")))
  ));
}

/** Replaces the screen with a heading and content, and moves focus to the heading. */
function show(title, ...content) {
  const heading = h("h1", { tabindex: "-1" }, title);
  main.replaceChildren(heading, ...content.flat().filter(Boolean));
  heading.focus();
  document.title = `${title.split(" › ").pop()} · Rollcall admin`;
}

/** Says something to screen readers and in the page's message area. */
function announce(text) {
  document.getElementById("status").textContent = text;
}

function alertBox(id) {
  return h("p", { id, class: "alert", role: "alert", hidden: true });
}

function showAlert(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

function when(text) {
  return text ? new Date(text).toLocaleString() : "never";
}

/** A member's name above their email (the email alone when they have no name). */
function personCell(m, extra = null) {
  const name = [m.first_name, m.last_name].filter(Boolean).join(" ");
  return h("td", {}, name || m.email, name ? h("span", { class: "email" }, m.email) : null, extra);
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    const problem = parseProblem(text);
    throw new ApiError(response.status, problem.code, problem.detail || problem.title || `${response.status} ${response.statusText}`);
  }
  return text ? JSON.parse(text) : null;
}

/** An error answer's problem document, or nothing when the body is not one (a proxy's page). */
function parseProblem(text) {
  try {
    return JSON.parse(text) || {};
  } catch {
    return {};
  }
}

/** Every item of a list, following its pages. */
async function listAll(path) {
  const items = [];
  let after = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const cursor = after ? `&after=${encodeURIComponent(after)}` : "";
    const page = await api("GET", `${path}${sep}limit=1000${cursor}`);
    items.push(...page.data);
    after = page.list_metadata.after;
  } while (after);
  return items;
}

function ws(path = "") {
  return `/workspaces/${encodeURIComponent(session.workspace.id)}${path}`;
}

function isOperator() {
  return session.caller && session.caller.kind === "operator";
}

// ---------------------------------------------------------------------------------------------
// Signing in

function signInScreen(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("workspace-bar").replaceChildren();
  const error = alertBox("sign-in-error");
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const form = h("form", { id: "sign-in", onsubmit: (e) => { e.preventDefault(); signIn(input.value.trim(), error); } },
    h("p", {}, "Sign in with a workspace admin token or an operator token. It is kept for this browser session only."),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    error
  );
  show("Sign in", form);
  if (message) showAlert(error, message);
  input.focus();
}

async function signIn(token, error) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await start();
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    showAlert(error, e.status === 401 ? "That token was not accepted." : e.message);
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(WORKSPACE_KEY);
  session.caller = null;
  location.hash = "";
  signInScreen();
}

/** Learns who the token belongs to and which workspaces it sees, then shows the screen asked for. */
async function start() {
  session.caller = await api("GET", "/caller");
  session.workspaces = await listAll("/workspaces");
  const wanted = sessionStorage.getItem(WORKSPACE_KEY);
  session.workspace = session.workspaces.find((w) => w.id === wanted) || session.workspaces[0] || null;
  document.getElementById("sign-out").hidden = false;
  document.querySelectorAll("[data-operator-only]").forEach((el) => { el.hidden = !isOperator(); });
  workspaceBar();
  if (!session.workspace) {
    show("No workspace", h("p", {}, "This token sees no workspace yet."));
    return;
  }
  document.getElementById("nav").hidden = false;
  if (!location.hash || location.hash === "#/") location.hash = "#/directory-sync";
  else await route();
}

/** The workspace's name, and for an operator a picker of every workspace. */
function workspaceBar() {
  const bar = document.getElementById("workspace-bar");
  if (!session.workspace) return bar.replaceChildren();
  if (!isOperator()) {
    return bar.replaceChildren(h("span", { id: "workspace-name" }, session.workspace.name));
  }
  const select = h("select", {
    id: "workspace-picker",
    onchange: () => {
      session.workspace = session.workspaces.find((w) => w.id === select.value);
      sessionStorage.setItem(WORKSPACE_KEY, select.value);
      route();
    },
  }, session.workspaces.map((w) => h("option", { value: w.id, selected: w.id === session.workspace.id }, `${w.name} (${w.plan})`)));
  bar.replaceChildren(h("label", { for: "workspace-picker" }, "Workspace"), select);
}

// ---------------------------------------------------------------------------------------------
// Settings › Security › Directory Sync

async function directorySyncScreen() {
  const [setting, workspace, scimDirectories] = await Promise.all([
    api("GET", ws("/directory-sync")), api("GET", ws()), api("GET", ws("/scim-directories"))]);
  session.workspace = workspace;
  const message = alertBox("sync-message");
  const toggle = h("button", {
    type: "button", id: "sync-switch", role: "switch", class: "switch",
    "aria-checked": String(setting.enabled),
    onclick: async () => {
      try {
        await api("PUT", ws("/directory-sync"), { enabled: !setting.enabled });
        announce(`Directory Sync turned ${setting.enabled ? "off" : "on"}`);
        await directorySyncScreen();
        document.getElementById("sync-switch").focus();
      } catch (e) {
        showAlert(message, e.message);
      }
    },
  }, h("span", { class: "switch-label" }, "Directory Sync"), h("span", { class: "switch-state", "aria-hidden": "true" }, setting.enabled ? "On" : "Off"));
  const rows = setting.directories.map(directoryRow);
  show("Settings › Security › Directory Sync",
    h("p", {}, `Plan: ${workspace.plan}. Directory Sync is available on the growth and enterprise plans. With it on, members are managed through your identity provider.`),
    toggle,
    message,
    table("Connected directories", ["Directory", "Provider", "State", "Members", "Last full pull", isOperator() ? "Actions" : null].filter(Boolean), rows),
    scimSection(scimDirectories, message)
  );
}

// An identity provider provisioning straight into the workspace: its SCIM directories, their base URLs
// and bearer tokens (shown once), new ones and revocations.
function scimSection(directories, message) {
  const shownOnce = (title, text, secret, url = null) => openDialog(title, [
    h("p", {}, text),
    url ? h("code", { class: "secret" }, url) : null,
    h("code", { id: "scim-secret", class: "secret" }, secret),
  ].filter(Boolean), []);
  const act = (label, action) => h("button", { type: "button", onclick: async () => {
    try {
      await action();
    } catch (err) {
      showAlert(message, err.message);
    }
  } }, label);
  const baseUrl = (d) => `${window.location.origin}${d.base_path}`;
  const rows = directories.map((d) => h("tr", { "data-scim-directory": d.id },
    h("td", {}, d.name, h("span", { class: "id" }, d.id)),
    h("td", {}, h("code", { class: "scim-base-url" }, baseUrl(d))),
    h("td", {}, `${counted(d.users, "user")}, ${counted(d.groups, "group")}`),
    h("td", {}, h("ul", { class: "tokens" }, ...d.tokens.map((t) => h("li", { "data-token": t.id },
      `${t.name}: `, t.revoked_at ? `revoked ${when(t.revoked_at)}` : (t.last_used_at ? `last used ${when(t.last_used_at)}` : "never used"), " ",
      t.revoked_at ? null : act("Revoke", async () => {
        await api("DELETE", ws(`/scim-directories/${d.id}/tokens/${t.id}`));
        await directorySyncScreen();
        announce(`Token ${t.name} revoked`);
      }))))),
    h("td", {}, act("New token", async () => {
      const created = await api("POST", ws(`/scim-directories/${d.id}/tokens`), { name: "SCIM token" });
      await directorySyncScreen();
      shownOnce("New SCIM token", "The identity provider sends this token as `Authorization: Bearer …`. Keep it now: it is not shown again. The other tokens work until revoked.", created.secret);
    }))));
  const name = h("input", { id: "scim-name", placeholder: "Okta" });
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const created = await api("POST", ws("/scim-directories"), name.value.trim() ? { name: name.value.trim() } : {});
        await directorySyncScreen();
        shownOnce("SCIM directory added",
          "In your identity provider, set the SCIM base URL and the bearer token below. Keep the token now: it is not shown again.",
          created.token.secret, baseUrl(created));
      } catch (err) {
        showAlert(message, err.message);
      }
    },
  }, h("label", { for: "scim-name" }, "Name"), name, h("button", { type: "submit" }, "Add SCIM directory"));
  return h("section", { id: "scim-directories" },
    h("h2", {}, "Provision with SCIM, without a broker"),
    h("p", {}, "Your identity provider (Okta, Entra ID, OneLogin, JumpCloud, …) can push users and groups straight to this workspace over SCIM 2.0. Teams, role mappings and the audit log work as for a broker's directory."),
    rows.length ? table("SCIM directories", ["Directory", "SCIM base URL", "Pushed", "Tokens", "Actions"], rows) : null,
    form);
}

function directoryRow(d) {
  const pull = d.last_full_pull;
  const progress = h("div", { class: "run-progress", id: `run-${d.id}`, "aria-live": "polite" });
  const cells = [
    h("td", {}, d.name),
    h("td", {}, PROVIDERS[d.type] || d.type),
    h("td", {}, d.state),
    h("td", { class: "member-count" }, String(d.member_count)),
    h("td", { class: "last-pull" }, pull ? lastPull(pull) : "never"),
  ];
  if (isOperator()) {
    cells.push(h("td", {},
      h("button", { type: "button", onclick: () => resync(d, false, progress) }, "Resync now"), " ",
      h("button", { type: "button", class: "preview-resync", onclick: () => previewResync(d, false, progress) }, "Preview resync"),
      progress));
    if (pull && pull.status === "held") {
      api("GET", `/sync-runs/${encodeURIComponent(pull.run_id)}`)
        .then((run) => showHeld(d, run, progress))
        .catch((e) => progress.replaceChildren(h("p", { class: "alert", role: "alert" }, e.message)));
    }
  }
  return h("tr", { "data-directory": d.id }, cells);
}

function lastPull(run) {
  return `${when(run.finished_at || run.created_at)}: ${run.status}`;
}

/** Starts a full pull and follows it until it ends. */
async function resync(directory, force, progress) {
  try {
    const { run_id } = await api("POST", `/directories/${encodeURIComponent(directory.id)}/resync${force ? "?force=true" : ""}`);
    await follow(directory, run_id, progress);
  } catch (e) {
    progress.replaceChildren(h("p", { class: "alert", role: "alert" }, e.message));
  }
}

async function follow(directory, runId, progress) {
  for (;;) {
    const run = await api("GET", `/sync-runs/${encodeURIComponent(runId)}`);
    progress.replaceChildren(runSummary(run));
    if (!["queued", "running"].includes(run.status)) {
      announce(`Full pull ${run.status}`);
      const row = progress.closest("tr");
      row.querySelector(".last-pull").textContent = lastPull(run);
      // The directory's member count as the pull left it, without reloading the screen.
      const { directories } = await api("GET", ws("/directory-sync"));
      const now = directories.find((x) => x.id === directory.id);
      if (now) row.querySelector(".member-count").textContent = String(now.member_count);
      if (run.status === "held") showHeld(directory, run, progress);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function runSummary(run) {
  const lines = [`Status: ${run.status} (${run.progress.phase}), ${run.progress.users_listed} users listed, ${run.progress.requests} requests`];
  if (run.counts) {
    const c = run.counts;
    lines.push(`Users: ${c.users_created} created, ${c.users_updated} updated, ${c.users_deleted} deleted; ` +
      `groups: ${c.groups_created} created, ${c.groups_deleted} deleted; memberships: ${c.memberships_added} added, ` +
      `${c.memberships_removed} removed; ${c.deprovisioned} deprovisioned`);
  }
  if (run.error) lines.push(`Error: ${run.error}`);
  return h("p", { class: "run-summary" }, lines.map((l) => h("span", {}, l)));
}

/** Lists the directory now and shows what a resync would do with it; nothing is applied. */
async function previewResync(directory, force, progress) {
  progress.replaceChildren(h("p", {}, "Listing the directory to preview a resync…"));
  try {
    const preview = await api("POST", `/directories/${encodeURIComponent(directory.id)}/resync?dry_run=true${force ? "&force=true" : ""}`);
    progress.replaceChildren(previewSummary(preview, directory, progress));
    announce("Resync previewed: nothing was changed");
  } catch (e) {
    progress.replaceChildren(h("p", { class: "alert", role: "alert" }, e.message));
  }
}

/** Who or what a previewed change is about, in words. */
function changeSubject(change) {
  const data = change.data || {};
  const member = data.member || {};
  const team = data.team || {};
  return member.email || team.name || change.subject_id || change.user_id || change.name || "";
}

function previewSummary(preview, directory, progress) {
  const c = preview.counts;
  const kind = (label, sample) => sample.count
    ? h("li", { "data-kind": label }, `${label}: ${sample.count}`,
      h("span", { class: "id" }, sample.first.map(changeSubject).join(", ") + (sample.count > sample.first.length ? ", …" : "")))
    : null;
  const kinds = [
    ...Object.entries(preview.changes).map(([type, sample]) => kind(type, sample)),
    kind("memberships added", preview.memberships_added),
    kind("memberships removed", preview.memberships_removed),
    kind("groups deleted", preview.groups_deleted),
  ].filter(Boolean);
  return h("div", { class: "preview", id: `preview-${directory.id}` },
    h("p", {}, h("strong", {}, "Preview: nothing was changed. "),
      `A resync would create ${c.users_created}, update ${c.users_updated} and delete ${c.users_deleted} users, ` +
      `and deprovision ${c.deprovisioned} members.`),
    preview.held ? h("p", { class: "held" }, `The guard would hold it: ${c.held} deprovisions are more than it allows. `,
      h("button", { type: "button", onclick: () => previewResync(directory, true, progress) }, "Preview forcing it")) : null,
    kinds.length ? h("ul", { class: "preview-kinds" }, kinds) : h("p", {}, "Nothing would change."));
}

/** A held run: what it would deprovision, and a Force button that applies it. */
function showHeld(directory, run, progress) {
  const c = run.counts || {};
  progress.append(h("div", { class: "held" },
    h("p", {}, `Held: this pull would deprovision ${c.held_users_deleted ?? 0} users, delete ${c.held_groups_deleted ?? 0} groups ` +
      `and remove ${c.held_memberships_removed ?? 0} memberships (${c.held ?? 0} steps held).`),
    h("button", { type: "button", class: "danger", onclick: () => resync(directory, true, progress) }, "Force")));
}

// ---------------------------------------------------------------------------------------------
// Members

/** "1 member", "2 members". */
function counted(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** How many rows a page of a list shows. */
const PAGE_SIZE = 50;

/**
 * A list read from the server a page at a time: `path` with the query `params()` gives, a caption with
 * how many match (the server counts them), Previous and Next. `reload()` starts again from the first page,
 * `refresh()` reads the page shown again. An answer to an older request than the last is dropped.
 */
function pagedList({ id, caption, headings, path, params, row }) {
  const wrap = h("div", { id, class: "paged" });
  const cursors = [null];
  let index = 0;
  let asked = 0;
  const fail = (e) => wrap.replaceChildren(h("p", { class: "alert", role: "alert" }, e.message));
  async function load() {
    const ticket = ++asked;
    const query = new URLSearchParams(params());
    query.set("limit", String(PAGE_SIZE));
    if (cursors[index]) query.set("after", cursors[index]);
    const page = await api("GET", `${path}?${query}`);
    if (ticket !== asked) return;
    cursors[index + 1] = page.list_metadata.after;
    const first = index * PAGE_SIZE + 1;
    const shown = page.data.length ? `, showing ${first}–${first + page.data.length - 1}` : "";
    const move = (by) => () => { index += by; load().catch(fail); };
    wrap.replaceChildren(
      table(`${caption(page.list_metadata.total)}${shown}`, headings, page.data.map(row)),
      h("div", { class: "pager" },
        h("button", { type: "button", class: "previous", disabled: index === 0, onclick: move(-1) }, "Previous"),
        h("button", { type: "button", class: "next", disabled: !page.list_metadata.after, onclick: move(1) }, "Next")));
  }
  return {
    element: wrap,
    reload: () => { cursors.length = 1; index = 0; return load().catch(fail); },
    refresh: () => load().catch(fail),
  };
}

/** A search box that calls `changed` once typing pauses. */
function searchBox(id, label, changed) {
  let timer = null;
  const input = h("input", {
    id, type: "search", autocomplete: "off", spellcheck: "false", maxlength: 200,
    oninput: () => { clearTimeout(timer); timer = setTimeout(changed, 250); },
  });
  return { input, label: h("label", { for: id }, label) };
}

/** A filter's select: "Any" and the given `[value, text]` options. */
function filterSelect(id, label, options, changed) {
  const select = h("select", { id, onchange: changed },
    h("option", { value: "" }, "Any"), options.map(([value, text]) => h("option", { value }, text)));
  return [h("label", { for: id }, label), select];
}

async function membersScreen() {
  const message = alertBox("members-message");
  const reload = () => list.reload();
  const search = searchBox("member-search", "Search by name or email", reload);
  const [statusLabel, status] = filterSelect("member-status", "Status",
    [["active", "Active"], ["deprovisioned", "Deprovisioned"]], reload);
  const [sourceLabel, source] = filterSelect("member-source", "Source",
    [["directory", "Directory"], ["manual", "Manual"]], reload);
  const [roleLabel, role] = filterSelect("member-role", "Role",
    [...ROLES, "owner"].map((r) => [r, r]), reload);
  const [groupLabel, group] = filterSelect("member-group", "Group", [], reload);
  const list = pagedList({
    id: "members",
    caption: (total) => counted(total, "member"),
    headings: ["Member", "Status", "Source", "Role", "Groups", "Actions"],
    path: ws("/members"),
    params: () => Object.fromEntries(Object.entries({
      search: search.input.value.trim(), status: status.value, managed_by: source.value,
      role: role.value, group: group.value,
    }).filter(([, value]) => value)),
    row: (m) => memberRow(m, message, () => list.refresh()),
  });
  const filters = h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); reload(); } },
    h("div", {}, search.label, search.input),
    h("div", {}, statusLabel, status, sourceLabel, source, roleLabel, role, groupLabel, group));
  show("Members", filters, message, list.element);
  await list.reload();
  // The group filter's choices come after the first page: they do not hold it up.
  api("GET", ws("/directory-groups?limit=1000"))
    .then((page) => group.append(...page.data.map((g) => h("option", { value: g.id }, g.name))))
    .catch((e) => showAlert(message, e.message));
}

/** A member's row; what is locked, and why, is the server's to say (`actions`). */
function memberRow(m, message, changed) {
  const directory = m.managed_by === "directory";
  const reasonId = `locked-${m.id}`;
  const removeLocked = !m.actions.remove.allowed;
  const roleLocked = !m.actions.change_role.allowed;
  const reasons = [...new Set([m.actions.remove.reason, m.actions.change_role.reason].filter(Boolean))];
  const roleSelect = h("select", {
    "aria-label": `Role of ${m.email}`, disabled: roleLocked,
    "aria-describedby": roleLocked ? reasonId : null,
    onchange: async () => {
      try {
        const updated = await api("PATCH", ws(`/members/${encodeURIComponent(m.id)}`), { role: roleSelect.value });
        m.role = updated.role;
        announce(`${m.email} is now ${roleSelect.value}`);
      } catch (e) {
        // The server decides who may grant or remove owner (rule 22); its reason is shown as it is.
        roleSelect.value = m.role;
        showAlert(message, e.message);
      }
    },
  }, [...ROLES, "owner"].map((r) => h("option", { value: r, selected: r === m.role }, r)));
  const remove = h("button", {
    type: "button", disabled: removeLocked, "aria-describedby": removeLocked ? reasonId : null,
    onclick: () => confirmRemoveMember(m, message, changed),
  }, "Remove");
  const attributes = Object.entries(m.attributes || {})
    .map(([name, value]) => `${name}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
  return h("tr", { "data-member": m.email },
    personCell(m, attributes.length ? h("span", { class: "id attributes" }, attributes.join(" · ")) : null),
    h("td", {}, m.status),
    h("td", {}, directory ? "Directory" : "Manual"),
    h("td", {}, roleSelect, h("span", { class: "id role-source" }, roleSourceText(m.role_source))),
    h("td", { class: "groups" }, m.groups.map((g) => g.name).join(", ") || "—"),
    h("td", {}, remove, reasons.length ? h("span", { class: "locked", id: reasonId }, reasons.join("; ")) : null));
}

/** Where a member's role comes from, in words. */
function roleSourceText(source) {
  switch (source && source.type) {
    case "directory_role": return `from the identity provider's role ${source.slug}`;
    case "group_mapping": return `from group ${source.group_id}`;
    case "default": return "the default role";
    default: return "set by hand";
  }
}

function confirmRemoveMember(m, message, changed) {
  openDialog(`Remove ${m.email}?`, [h("p", {}, "They lose access to this workspace.")], [
    ["Remove member", "danger", async () => {
      try {
        await api("DELETE", ws(`/members/${encodeURIComponent(m.id)}`));
        announce(`${m.email} removed`);
      } catch (e) {
        showAlert(message, e.message);
      }
      await changed();
    }],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Dialogs

/** Where focus goes back to when the dialog closes. */
let dialogOpener = null;
dialog.addEventListener("close", () => {
  if (dialogOpener && dialogOpener.isConnected) dialogOpener.focus();
  dialogOpener = null;
});

/**
 * Opens the dialog with a title, content and buttons `[label, class, action]`, and Cancel; an action
 * that returns true keeps it open (it showed a next step), one that throws shows the error in it.
 */
function openDialog(title, content, actions) {
  const error = alertBox("dialog-error");
  const buttons = actions.map(([label, cls, action]) => h("button", {
    type: "button", class: cls,
    onclick: async () => {
      try {
        const keepOpen = await action(error);
        if (!keepOpen) dialog.close();
      } catch (e) {
        showAlert(error, e.message);
      }
    },
  }, label));
  const cancel = h("button", { type: "button", onclick: () => dialog.close() }, "Cancel");
  dialog.replaceChildren(
    h("h2", { id: "dialog-title" }, title),
    ...content,
    error,
    h("div", { class: "actions" }, ...buttons, cancel)
  );
  if (!dialog.open) {
    dialogOpener = document.activeElement;
    dialog.showModal();
  }
  (dialog.querySelector("select, input") || buttons[0] || cancel).focus();
}

// ---------------------------------------------------------------------------------------------
// Settings › Teams

async function teamsScreen() {
  // Each team comes with its member count and linked groups; its members are read when it is opened.
  const [teams, members] = await Promise.all([listAll(ws("/teams")), api("GET", ws("/members?limit=1"))]);
  const name = h("input", { id: "new-team-name", name: "name", required: true });
  const message = alertBox("teams-message");
  const create = h("form", {
    class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("POST", ws("/teams"), { name: name.value });
        announce(`Team ${name.value} created`);
        await teamsScreen();
      } catch (err) {
        showAlert(message, err.message);
      }
    },
  }, h("label", { for: "new-team-name" }, "New team"), name, h("button", { type: "submit" }, "Create team"));
  show("Settings › Teams", create, message,
    h("p", {}, `${members.list_metadata.total} members in the workspace, ${teams.length} teams.`),
    teams.map(teamSection));
}

function sourceText(source, groupName) {
  return source.type === "manual" ? "Manual" : `Directory group: ${groupName.get(source.group_id) || source.group_id}`;
}

/** A team: its count and linked groups, and its members (paged, searchable) once opened. */
function teamSection(team) {
  const headingId = `team-${team.id}`;
  const groupName = new Map(team.linked_groups.map((g) => [g.id, g.name]));
  const links = team.linked_groups.map((g) => h("li", {},
    h("span", {}, g.name), " ",
    h("button", { type: "button", onclick: () => unlinkDialog(team, g.id, g.name) }, `Remove ${g.name}`)));
  const search = searchBox(`team-search-${team.id}`, "Search members", () => roster.reload());
  const roster = pagedList({
    id: `team-members-${team.id}`,
    caption: (total) => `${counted(total, "member")} of ${team.name}`,
    headings: ["Member", "Status", "Sources"],
    path: ws(`/teams/${encodeURIComponent(team.id)}/members`),
    params: () => (search.input.value.trim() ? { search: search.input.value.trim() } : {}),
    row: (m) => h("tr", { "data-member": m.email },
      personCell(m), h("td", {}, m.status),
      h("td", {}, m.sources.map((s) => sourceText(s, groupName)).join("; "))),
  });
  let opened = false;
  const members = h("details", {
    class: "team-members",
    ontoggle: () => { if (members.open && !opened) { opened = true; roster.reload(); } },
  }, h("summary", {}, `Members of ${team.name}`), search.label, search.input, roster.element);
  return h("section", { class: "team", "aria-labelledby": headingId, "data-team": team.name },
    h("h2", { id: headingId }, team.name, " ", h("span", { class: "count" }, `(${counted(team.member_count, "member")})`)),
    h("h3", {}, "Directory groups"),
    links.length ? h("ul", { class: "links" }, links) : h("p", {}, "No directory group is linked."),
    h("button", { type: "button", onclick: () => linkDialog(team) }, "Add directory group"),
    members);
}

/** Reads a team again and shows it in place of its section: counts follow a link or an unlink at once. */
async function refreshTeam(team) {
  const fresh = await api("GET", ws(`/teams/${encodeURIComponent(team.id)}`));
  const section = document.querySelector(`section[aria-labelledby="team-${CSS.escape(team.id)}"]`);
  if (section) section.replaceWith(teamSection(fresh));
}

/** Picks a directory group (searched on the server), then asks to confirm the link. */
async function linkDialog(team) {
  // The server says whether anything can be linked now, and why not (directory sync off, or no groups yet).
  const { linking } = await api("GET", ws());
  if (!linking.allowed) {
    openDialog("Add directory group", [h("p", { id: "link-refused" }, linking.reason)], []);
    return;
  }
  let found = [];
  const picker = h("select", { id: "group-picker", size: 8 });
  const fill = async () => {
    const text = search.input.value.trim();
    const page = await api("GET", ws(`/directory-groups?limit=50${text ? `&search=${encodeURIComponent(text)}` : ""}`));
    found = page.data.filter((g) => !team.linked_group_ids.includes(g.id));
    picker.replaceChildren(...found.map((g, i) =>
      h("option", { value: g.id, selected: i === 0 }, `${g.name} (${g.member_count} members)`)));
  };
  const search = searchBox("group-search", "Find a directory group", () => fill().catch(() => {}));
  await fill();
  openDialog(`Add directory group to ${team.name}`, [
    search.label, search.input,
    h("label", { for: "group-picker" }, "Directory group"), picker,
  ], [
    ["Continue", "primary", () => {
      const group = found.find((g) => g.id === picker.value);
      if (!group) throw new Error("Pick a directory group first.");
      confirmLink(team, group);
      return true;
    }],
  ]);
}

function confirmLink(team, group) {
  openDialog(`Link ${group.name} to ${team.name}?`, [h("p", {},
    `Its ${group.member_count} members will be synced into ${team.name}, and follow the group from now on.`)], [
    ["Confirm", "primary", async () => {
      const link = await api("POST", ws(`/teams/${encodeURIComponent(team.id)}/directory-groups`), { group_id: group.id });
      announce(`${group.name} linked: ${link.members_added} members added`);
      dialog.close();
      await refreshTeam(team);
      return true;
    }],
  ]);
}

/** The product page's two choices, with how many members each affects (the server counts them). */
async function unlinkDialog(team, groupId, name) {
  const path = ws(`/teams/${encodeURIComponent(team.id)}/directory-groups/${encodeURIComponent(groupId)}`);
  const preview = await api("GET", `${path}/unlink-preview`);
  const unlink = (choice) => async () => {
    await api("DELETE", `${path}?members=${choice}`);
    announce(`${name} removed from ${team.name}`);
    dialog.close();
    await refreshTeam(team);
    return true;
  };
  openDialog(`Remove ${name} from ${team.name}`, [
    h("p", {}, `${preview.through_group} members are in ${team.name} through ${name}.`),
    h("ul", {},
      h("li", {}, h("strong", {}, "Keep current members"), `: all ${preview.through_group} stay in the team, as manual members.`),
      h("li", {}, h("strong", {}, "Remove current members"), `: ${preview.leaving_on_remove} leave the team; ${preview.staying_on_remove} stay through another source.`)),
  ], [
    ["Keep current members", "primary", unlink("keep")],
    ["Remove current members", "danger", unlink("remove")],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Role mappings

async function roleMappingsScreen() {
  const [workspace, groups, mappings, source] = await Promise.all([
    api("GET", ws()), listAll(ws("/directory-groups")), api("GET", ws("/role-mappings")),
    api("GET", ws("/role-source")),
  ]);
  const saved = new Map(mappings.data.map((m) => [m.group_id, m.role]));
  const draft = new Map(saved);
  const preview = h("div", { id: "role-preview", "aria-live": "polite" });
  const message = alertBox("roles-message");
  const save = h("button", { type: "button", id: "save-roles", disabled: true, onclick: async () => {
    try {
      await api("PUT", ws("/role-mappings"), wanted(draft));
      announce("Role mappings saved");
      await roleMappingsScreen();
    } catch (e) {
      showAlert(message, e.message);
    }
  } }, "Save role mappings");
  const rows = groups.map((g) => {
    const select = h("select", {
      "aria-label": `Role for ${g.name}`, "data-group": g.name,
      onchange: async () => {
        if (select.value) draft.set(g.id, select.value);
        else draft.delete(g.id);
        save.disabled = !(await previewRoles(draft, preview, message));
      },
    }, h("option", { value: "" }, "No role"), ROLES.map((r) => h("option", { value: r, selected: saved.get(g.id) === r }, r)));
    return h("tr", {}, h("td", {}, g.name), h("td", {}, String(g.member_count)), h("td", {}, select));
  });
  const fromSlugs = source.source === "directory_roles";
  show("Role mappings",
    roleSourceForm(workspace, source),
    h("h2", {}, "Roles from directory groups"),
    h("p", {}, fromSlugs
      ? "Roles come from the identity provider's role slugs: these mappings are kept, and used again once roles come from directory groups."
      : `Members of a mapped group get its role; in several mapped groups, the highest role wins (admin over builder over viewer). Others get the workspace's default role, ${workspace.default_role}. Owners keep their role.`),
    table("Directory groups and the role each grants", ["Directory group", "Members", "Role"], rows),
    preview, message, save);
}

/** Where directory members' roles come from: their groups, or the identity provider's role slugs. */
function roleSourceForm(workspace, source) {
  const message = alertBox("role-source-message");
  const preview = h("div", { id: "role-source-preview", "aria-live": "polite" });
  const choice = (value, label) => h("label", { class: "choice" },
    h("input", { type: "radio", name: "role-source", value, checked: source.source === value }), label);
  const slugRows = h("tbody", {});
  const addSlug = (slug = "", role = "viewer") => {
    const row = h("tr", { class: "slug-row" },
      h("td", {}, h("input", { type: "text", class: "slug", "aria-label": "Role slug", value: slug })),
      h("td", {}, h("select", { class: "slug-role", "aria-label": "Product role" },
        ROLES.map((r) => h("option", { value: r, selected: r === role }, r)))),
      h("td", {}, h("button", { type: "button", onclick: () => row.remove() }, "Remove")));
    slugRows.append(row);
  };
  source.mappings.forEach((m) => addSlug(m.slug, m.role));
  const defaultSlug = h("input", { id: "default-slug", type: "text", value: source.default_slug });
  const setting = () => ({
    source: document.querySelector("input[name=role-source]:checked").value,
    default_slug: defaultSlug.value,
    mappings: [...slugRows.querySelectorAll("tr")].map((r) => ({
      slug: r.querySelector(".slug").value, role: r.querySelector(".slug-role").value,
    })).filter((m) => m.slug.trim() !== ""),
  });
  const act = (label, id, action) => h("button", { type: "button", id, onclick: async () => {
    try {
      await action();
      showAlert(message, "");
    } catch (e) {
      showAlert(message, e.message);
    }
  } }, label);
  return h("section", { id: "role-source" },
    h("h2", {}, "Where roles come from"),
    h("fieldset", {}, h("legend", {}, "Directory members' roles come from"),
      choice("group_mappings", "Their directory groups (the mappings below)"),
      choice("directory_roles", "The roles the identity provider assigns them (role slugs)")),
    h("p", {}, `With role slugs, a member gets the highest role among their mapped slugs; a slug with no entry, or the default slug, gives the default role, ${workspace.default_role}. Owner is never assigned.`),
    h("label", { for: "default-slug" }, "Default slug"), defaultSlug,
    h("table", {}, h("caption", {}, "Role slugs and the role each grants"),
      h("thead", {}, h("tr", {}, h("th", {}, "Role slug"), h("th", {}, "Role"), h("th", {}, ""))), slugRows),
    h("button", { type: "button", onclick: () => addSlug() }, "Add a role slug"),
    act("Preview", "preview-role-source", async () => {
      const { total, moves } = await api("POST", ws("/role-source/preview"), setting());
      preview.replaceChildren(
        h("p", { id: "role-source-total" }, `This change would move ${total} members.`),
        h("ul", {}, moves.map((m) => h("li", {}, `${m.count} ${m.from} → ${m.to}`))));
    }),
    act("Save where roles come from", "save-role-source", async () => {
      await api("PUT", ws("/role-source"), setting());
      announce("Role source saved");
      await roleMappingsScreen();
    }),
    preview, message);
}

function wanted(draft) {
  return [...draft].map(([group_id, role]) => ({ group_id, role }));
}

/** Shows how many members the draft would move, from which role to which; true when it moves any. */
async function previewRoles(draft, preview, message) {
  try {
    const { total, moves } = await api("POST", ws("/role-mappings/preview"), wanted(draft));
    preview.replaceChildren(
      h("p", { id: "role-preview-total" }, `This change would move ${total} members.`),
      h("ul", {}, moves.map((m) => h("li", {}, `${m.count} ${m.from} → ${m.to}`))));
    showAlert(message, "");
    return true;
  } catch (e) {
    showAlert(message, e.message);
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Audit log and events

const CAUSES = { event: "Webhook event", sync_run: "Full pull", api_token: "Admin token", operator: "Operator" };

function causeCell(cause) {
  return h("td", {}, CAUSES[cause.type] || cause.type, h("span", { class: "id" }, cause.id));
}

/** What the entry is about: a member's email or a team's name when the entry holds it, and its id. */
function subjectCell(e) {
  const shown = [e.after, e.before].find((v) => v && (v.email || v.name));
  const label = shown ? shown.email || shown.name : e.subject_type;
  return h("td", {}, `${e.subject_type}: ${label}`, h("span", { class: "id" }, e.subject_id));
}

/** The fields a change changed, `field: before → after`. */
function changeText(e) {
  if (!e.before) return "added";
  if (!e.after) return "removed";
  return Object.keys(e.after)
    .filter((k) => k !== "updated_at" && JSON.stringify(e.before[k]) !== JSON.stringify(e.after[k]))
    .map((k) => `${k}: ${shownValue(e.before[k])} → ${shownValue(e.after[k])}`)
    .join("; ");
}

/** A value as JSON, with room to wrap after its commas. */
function shownValue(value) {
  return JSON.stringify(value ?? null).replaceAll(",", ", ");
}

async function auditLogScreen(after) {
  const page = await api("GET", ws(`/audit-log?limit=100${after ? `&after=${encodeURIComponent(after)}` : ""}`));
  const rows = page.data.map((e) => h("tr", {},
    h("td", {}, when(e.occurred_at)), h("td", {}, e.action), subjectCell(e), h("td", { class: "change" }, changeText(e)),
    causeCell(e.cause)));
  const more = page.list_metadata.after
    ? h("button", { type: "button", onclick: () => auditLogScreen(page.list_metadata.after) }, "Older entries")
    : null;
  show("Audit log", table("Changes, newest first", ["When", "What", "Subject", "Change", "Cause"], rows), more);
}

async function eventsScreen() {
  if (!isOperator()) return show("Events", h("p", {}, "Only an operator sees deliveries."));
  const [failed, skipped] = await Promise.all([
    api("GET", "/events?status=failed&limit=100"), api("GET", "/events?status=skipped&limit=100"),
  ]);
  const message = alertBox("events-message");
  const row = (e) => h("tr", {},
    h("td", {}, String(e.id)), h("td", {}, e.event_type || "—"), h("td", {}, e.directory_id || "—"),
    h("td", {}, e.reason || "—"), h("td", {}, String(e.attempts)), h("td", {}, when(e.received_at)),
    h("td", {}, h("button", { type: "button", onclick: async () => {
      try {
        await api("POST", `/events/${e.id}/retry`);
        announce(`Delivery ${e.id} queued again`);
        await eventsScreen();
      } catch (err) {
        showAlert(message, err.message);
      }
    } }, `Retry ${e.id}`)));
  const headings = ["Delivery", "Event", "Directory", "Reason", "Attempts", "Received", "Actions"];
  show("Events", message,
    table("Failed deliveries", headings, failed.data.map(row)),
    table("Skipped deliveries", headings, skipped.data.map(row)));
}

// ---------------------------------------------------------------------------------------------
// Settings › Webhooks: where the workspace's changes are sent

const CHANGE_TYPES = [
  "member.provisioned", "member.added", "member.updated", "member.role_changed", "member.deprovisioned",
  "member.reprovisioned", "member.removed", "team.created", "team.renamed", "team.deleted",
  "team.member_added", "team.member_removed", "team.member_sources_changed",
];

function endpointState(e) {
  if (!e.enabled) return `Disabled: ${e.disabled_reason || "by hand"}`;
  if (e.failing_since) return `Failing since ${when(e.failing_since)} (${e.failed_attempts} attempts)`;
  return "Enabled";
}

async function webhooksScreen(shownAttempts) {
  const endpoints = await listAll(ws("/webhook-endpoints"));
  const message = alertBox("webhooks-message");
  const act = (label, action) => h("button", { type: "button", onclick: async () => {
    try {
      await action();
      await webhooksScreen(shownAttempts);
    } catch (err) {
      showAlert(message, err.message);
    }
  } }, label);
  const rows = endpoints.map((e) => h("tr", { "data-endpoint": e.url },
    h("td", {}, e.url, h("span", { class: "id" }, e.id)),
    h("td", {}, e.event_types.length ? e.event_types.join(", ") : "Every change",
      e.batch_size > 1 ? h("span", { class: "id" }, `up to ${e.batch_size} per message`) : null),
    h("td", {}, endpointState(e)),
    h("td", {}, String(e.delivered_through)),
    h("td", {},
      h("button", { type: "button", onclick: () => webhooksScreen(e.id) }, "Attempts"),
      e.enabled
        ? act("Disable", () => api("PATCH", ws(`/webhook-endpoints/${e.id}`), { enabled: false }))
        : act("Enable", () => api("PATCH", ws(`/webhook-endpoints/${e.id}`), { enabled: true })),
      act("Delete", () => api("DELETE", ws(`/webhook-endpoints/${e.id}`))))));
  const url = h("input", { id: "endpoint-url", type: "url", required: true, placeholder: "https://" });
  const batch = h("input", { id: "endpoint-batch", type: "number", min: "1", max: "100", value: "1" });
  const types = CHANGE_TYPES.map((t) => h("label", { class: "choice" },
    h("input", { type: "checkbox", name: "event-type", value: t }), t));
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const chosen = [...form.querySelectorAll("input[name=event-type]:checked")].map((c) => c.value);
      try {
        const created = await api("POST", ws("/webhook-endpoints"),
          { url: url.value, event_types: chosen, batch_size: Number(batch.value) });
        await webhooksScreen(shownAttempts);
        openDialog("Endpoint added", [
          h("p", {}, `Changes are sent to ${created.url}, signed as Standard Webhooks with this secret. Keep it now: it is not shown again.`),
          h("code", { id: "endpoint-secret", class: "secret" }, created.secret),
        ], []);
      } catch (err) {
        showAlert(message, err.message);
      }
    },
  },
  h("label", { for: "endpoint-url" }, "Endpoint URL"), url,
  h("fieldset", {}, h("legend", {}, "Changes to send (none chosen: every change)"), types),
  h("label", { for: "endpoint-batch" }, "Changes per message (1: each change its own message; more: a change.batch, for receivers that must keep up with bursts)"), batch,
  h("button", { type: "submit" }, "Add endpoint"));
  let attempts = null;
  const shown = endpoints.find((e) => e.id === shownAttempts);
  if (shown) {
    const page = await api("GET", ws(`/webhook-endpoints/${shown.id}/attempts?limit=50`));
    attempts = table(`Latest attempts to ${shown.url}`, ["When", "Up to change", "Answer", "Took", "Response"],
      page.data.map((a) => h("tr", {},
        h("td", {}, when(a.attempted_at)), h("td", {}, String(a.position)),
        h("td", {}, a.status_code ? String(a.status_code) : a.error || "—"),
        h("td", {}, `${a.latency_ms} ms`), h("td", { class: "change" }, a.response || ""))));
  }
  show("Settings › Webhooks", message,
    h("p", {}, "Each change to the workspace's members, teams and roles is sent to these endpoints, in order, signed."),
    table("Endpoints", ["URL", "Changes", "State", "Sent up to", "Actions"], rows),
    attempts, form);
}

// ---------------------------------------------------------------------------------------------
// Navigation

const SCREENS = {
  "#/directory-sync": directorySyncScreen,
  "#/members": membersScreen,
  "#/teams": teamsScreen,
  "#/role-mappings": roleMappingsScreen,
  "#/audit-log": auditLogScreen,
  "#/events": eventsScreen,
  "#/webhooks": () => webhooksScreen(),
};

async function route() {
  if (!session.caller) return;
  const screen = SCREENS[location.hash] || directorySyncScreen;
  document.querySelectorAll("#nav a").forEach((a) => {
    if (a.getAttribute("href") === location.hash) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  try {
    await screen();
  } catch (e) {
    if (e.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      session.caller = null;
      return signInScreen("The token is no longer accepted; sign in again.");
    }
    show("Something went wrong", h("p", { class: "alert", role: "alert" }, e.message));
  }
}

window.addEventListener("hashchange", route);
document.getElementById("sign-out").addEventListener("click", signOut);
if (sessionStorage.getItem(TOKEN_KEY)) {
  start().catch((e) => {
    sessionStorage.removeItem(TOKEN_KEY);
    signInScreen(e.status === 401 ? "The token is no longer accepted; sign in again." : e.message);
  });
} else {
  signInScreen();
}
