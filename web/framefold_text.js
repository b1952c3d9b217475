// FrameFold: show a node's text outputs (metrics JSON, caption checks, frame info) on the node itself.
// A node returns {"ui": {"text": [...]}}; ComfyUI's frontend hands that to onExecuted as message.text.
// Served by ComfyUI and by FrameFold's host at /extensions/<pack>/framefold_text.js.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const WIDGET_NAME = "framefold_text";

/** Pretty-prints JSON text (metrics); other text is shown as it is. */
export function formatText(parts) {
  return parts
    .map((part) => {
      try {
        return JSON.stringify(JSON.parse(part), null, 2);
      } catch {
        return String(part);
      }
    })
    .join("\n\n");
}

/** The node's read-only text box, made on first use. */
function textWidget(node) {
  let widget = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, WIDGET_NAME, ["STRING", { multiline: true }], app).widget;
    widget.serialize = false; // an output, not a widget value of the saved workflow
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.style.opacity = 0.85;
    }
  }
  return widget;
}

app.registerExtension({
  name: "FrameFold.TextOutputs",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData.name.startsWith("FrameFold")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      if (!Array.isArray(message?.text) || message.text.length === 0) return;
      textWidget(this).value = formatText(message.text);
      this.setDirtyCanvas?.(true, true);
    };
  },
});
