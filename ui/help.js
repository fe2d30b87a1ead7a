// The shortcut help overlay ('?'): lists the bindings active on the current screen.

import { h } from './dom.js';
import { t } from './i18n.js';
import { describe, displayCombo } from './keys.js';

let open = null;

export function showHelp() {
  if (open) { open.close(); return; }
  const rows = describe().map(({ combo, desc }) => h('tr', null,
    h('td', null, h('kbd', { text: displayCombo(combo) })),
    h('td', { text: t(desc) })));
  const dialog = h('dialog', { class: 'dialog help-dialog', 'aria-labelledby': 'help-title' },
    h('h2', { id: 'help-title', class: 'dialog-title', text: t('help.title') }),
    h('table', { class: 'table help-table' }, h('tbody', null, rows)),
    h('p', { class: 'muted', text: t('help.note') }),
    h('div', { class: 'dialog-actions' },
      h('button', { type: 'button', class: 'btn btn-primary', text: t('common.close'), onClick: () => dialog.close() })));
  dialog.addEventListener('close', () => { dialog.remove(); open = null; });
  document.body.appendChild(dialog);
  open = dialog;
  dialog.showModal();
}
