// In-page dialogs (<dialog>, modal): every state-changing action goes through
// confirmAction(); a 409 drift answer through chooseDriftWay().

import { envBadge, h } from "./dom.js";

const MAX_ITEMS = 200;

function listInto(ul, items) {
  const shown = items.slice(0, MAX_ITEMS).map((item) => h("li", {}, h("code", {}, item)));
  if (items.length > MAX_ITEMS) shown.push(h("li", {}, `… and ${items.length - MAX_ITEMS} more`));
  ul.replaceChildren(...shown);
  ul.hidden = items.length === 0;
}

/** Resolve with the value of the first choice made in ``dialog``; Escape = ``onEscape``. */
function ask(dialog, buttons, onEscape) {
  return new Promise((resolve) => {
    const done = (value) => {
      for (const [button, handler] of handlers) button.removeEventListener("click", handler);
      dialog.removeEventListener("cancel", escape);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const handlers = buttons.map(([button, value]) => [button, () => done(value)]);
    for (const [button, handler] of handlers) button.addEventListener("click", handler);
    const escape = (event) => {
      event.preventDefault();
      done(onEscape);
    };
    dialog.addEventListener("cancel", escape);
    dialog.showModal();
  });
}

/**
 * Ask before a state-changing action. Resolves true only on the confirm button.
 * {title, env, message, items, confirmLabel, cancelLabel, danger}
 */
export function confirmAction(options) {
  const dialog = document.getElementById("confirm-dialog");
  const ok = document.getElementById("confirm-ok");
  const cancel = document.getElementById("confirm-cancel");
  const env = options.env || "";
  // Each question gets a number: a question asked right after another (in the same
  // <dialog>) is told apart from the one before.
  dialog.dataset.ask = String(Number(dialog.dataset.ask || 0) + 1);
  dialog.className = env ? `env-dialog env-${env}` : "";
  document.getElementById("confirm-env").replaceChildren(...(env ? [envBadge(env)] : []));
  document.getElementById("confirm-title").textContent = options.title;
  document.getElementById("confirm-message").textContent = options.message || "";
  listInto(document.getElementById("confirm-items"), options.items || []);
  ok.textContent = options.confirmLabel || "Confirm";
  ok.className = options.danger === false ? "" : "danger";
  cancel.textContent = options.cancelLabel || "Cancel";
  const answer = ask(dialog, [[ok, true], [cancel, false]], false);
  cancel.focus(); // the safe choice has the focus: Enter does not publish
  return answer;
}

/** After a 409 drift: "refresh", "select", "force" or "cancel". */
export function chooseDriftWay(message, conflicts) {
  const dialog = document.getElementById("drift-dialog");
  document.getElementById("drift-message").textContent = message;
  listInto(document.getElementById("drift-conflicts"), conflicts);
  const buttons = [...dialog.querySelectorAll("button[data-choice]")].map((b) => [
    b,
    b.dataset.choice,
  ]);
  const answer = ask(dialog, buttons, "cancel");
  dialog.querySelector('button[data-choice="cancel"]').focus();
  return answer;
}

export function anyDialogOpen() {
  return [...document.querySelectorAll("dialog")].some((d) => d.open);
}
