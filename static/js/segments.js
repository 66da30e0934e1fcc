/* The segment builder: nested groups of conditions, a live count. No libraries. */
(function () {
  "use strict";
  var root = document.getElementById("builder");
  if (!root) { return; }
  var config = JSON.parse(document.getElementById("builder-config").textContent);
  var hidden = document.getElementById("id_rules");
  var counter = document.getElementById("segment-count");
  var fields = {};
  config.fields.forEach(function (f) { fields[f.name] = f; });
  var uid = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function labelled(text, control) {
    var id = "b" + (++uid);
    control.id = id;
    return el("span", { "class": "builder-control" },
      [el("label", { "for": id, "class": "visually-hidden", text: text }), control]);
  }

  function select(options, value) {
    var s = el("select");
    options.forEach(function (o) {
      var opt = el("option", { value: o.value, text: o.label });
      if (String(o.value) === String(value)) { opt.selected = true; }
      s.appendChild(opt);
    });
    return s;
  }

  function conditionNode(rule) {
    var row = el("div", { "class": "builder-row" });
    var fieldName = rule.field || config.fields[0].name;
    var fieldSelect = select(config.fields.map(function (f) {
      return { value: f.name, label: f.label };
    }), fieldName);
    row.appendChild(labelled(config.text.field, fieldSelect));
    var rest = el("span", { "class": "builder-rest" });
    row.appendChild(rest);

    function drawRest(op, values) {
      rest.innerHTML = "";
      var field = fields[fieldSelect.value];
      var ops = config.operators[field.format] || config.operators.text;
      var opSelect = select(ops.map(function (o) { return { value: o, label: config.labels[o] }; }),
        ops.indexOf(op) >= 0 ? op : ops[0]);
      rest.appendChild(labelled(config.text.operator, opSelect));
      var valueControl = null;
      if (opSelect.value !== "ie" && opSelect.value !== "nie") {
        if (field.options.length) {
          valueControl = select(field.options, (values || [])[0]);
        } else if (field.format === "boolean") {
          valueControl = select([{ value: "1", label: "✓" }, { value: "0", label: "✗" }], (values || [])[0]);
        } else {
          valueControl = el("input", { type: field.format === "date" ? "date" : field.format === "number" ? "number" : "text",
            value: (values || [])[0] || "" });
        }
        rest.appendChild(labelled(config.text.value, valueControl));
      }
      opSelect.addEventListener("change", function () { drawRest(opSelect.value, []); changed(); });
      row._read = function () {
        return { field: fieldSelect.value, op: opSelect.value,
          values: valueControl ? [valueControl.value] : [] };
      };
    }
    fieldSelect.addEventListener("change", function () { drawRest(null, []); changed(); });
    drawRest(rule.op, rule.values);
    var remove = el("button", { type: "button", "class": "button button-small", text: config.text.remove });
    remove.addEventListener("click", function () { row.remove(); changed(); });
    row.appendChild(remove);
    return row;
  }

  function groupNode(group, nested) {
    var box = el("fieldset", { "class": "builder-group" });
    var logic = select([{ value: "and", label: config.text.and }, { value: "or", label: config.text.or }],
      group.logic || "and");
    box.appendChild(el("legend", {}, [el("span", { text: config.text.match + " " }), logic]));
    var items = el("div", { "class": "builder-items" });
    box.appendChild(items);
    (group.rules || []).forEach(function (rule) {
      items.appendChild(rule.rules ? groupNode(rule, true) : conditionNode(rule));
    });
    var add = el("button", { type: "button", "class": "button button-small", text: config.text.add_condition });
    add.addEventListener("click", function () { items.appendChild(conditionNode({})); changed(); });
    var addGroup = el("button", { type: "button", "class": "button button-small", text: config.text.add_group });
    addGroup.addEventListener("click", function () {
      items.appendChild(groupNode({ logic: "or", rules: [{}] }, true)); changed();
    });
    var actions = el("div", { "class": "inline-actions" }, [add, addGroup]);
    if (nested) {
      var remove = el("button", { type: "button", "class": "button button-small", text: config.text.remove });
      remove.addEventListener("click", function () { box.remove(); changed(); });
      actions.appendChild(remove);
    }
    box.appendChild(actions);
    logic.addEventListener("change", changed);
    box._read = function () {
      var rules = [];
      Array.prototype.forEach.call(items.children, function (child) {
        if (child._read) { rules.push(child._read()); }
      });
      return { logic: logic.value, rules: rules };
    };
    return box;
  }

  var initial = {};
  try { initial = JSON.parse(hidden.value || "{}"); } catch (e) { initial = {}; }
  if (!initial.rules) { initial = { logic: "and", rules: [] }; }
  var top = groupNode(initial, false);
  root.appendChild(top);
  root.addEventListener("input", changed);

  var timer = null;
  function changed() {
    hidden.value = JSON.stringify(top._read());
    window.clearTimeout(timer);
    timer = window.setTimeout(count, 300);
  }
  function count() {
    var token = document.querySelector("[name=csrfmiddlewaretoken]").value;
    fetch(root.dataset.countUrl, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token }, body: hidden.value })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        counter.textContent = body.error ? "?" : new Intl.NumberFormat(document.documentElement.lang).format(body.count);
        counter.title = body.error || "";
      });
  }
  changed();
})();
