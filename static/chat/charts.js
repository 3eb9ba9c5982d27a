// Charts from display_chart's data (tools/display_chart.py: chart_type bar|line|pie, labels,
// values, title, x_label, y_label), drawn as SVG with DOM calls: labels are text nodes,
// never markup. Each chart has a text alternative and its figures in a table.
//
// A chart is drawn at the width it is shown at (one SVG unit is one CSS pixel) and drawn
// again when that width changes: scaling one drawing down to a phone would shrink its
// labels with it (12 px became 6).

import { h, s } from "./dom.js";

// Tableau 10: distinguishable, and readable on light and dark backgrounds.
const COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const DEFAULT_WIDTH = 560; // until the chart is on the page and its width is known
const MARGIN = { top: 20, right: 16, left: 56 };
const heightFor = (width) => Math.round(Math.min(300, Math.max(220, width * 0.55)));

const formatNumber = (value) =>
  Number.isInteger(value) ? value.toLocaleString() : value.toLocaleString(undefined, { maximumFractionDigits: 2 });

function truncate(text, length) {
  return text.length > length ? `${text.slice(0, Math.max(1, length - 1))}…` : text;
}

/** About `count` round tick values covering [min, max]. */
export function niceTicks(min, max, count = 5) {
  if (min === max) {
    min -= 1;
    max += 1;
  }
  const rough = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const scaled = rough / magnitude;
  const step = (scaled < 1.5 ? 1 : scaled < 3 ? 2 : scaled < 7 ? 5 : 10) * magnitude;
  const ticks = [];
  for (let tick = Math.floor(min / step) * step; tick <= Math.ceil(max / step) * step + step / 2; tick += step) {
    ticks.push(Number(tick.toPrecision(12)));
  }
  return ticks;
}

function describe(data) {
  const points = data.labels.map((label, i) => `${label}: ${formatNumber(data.values[i])}`).join(", ");
  const kind = { bar: "Bar chart", line: "Line chart", pie: "Pie chart" }[data.chart_type] || "Chart";
  return `${kind}${data.title ? ` of ${data.title}` : ""}. ${points}.`;
}

function dataTable(data) {
  return h(
    "details",
    { class: "chart-data" },
    h("summary", {}, "Show the figures"),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, data.x_label || "Label"), h("th", { scope: "col" }, data.y_label || "Value"))),
      h("tbody", {}, data.labels.map((label, i) => h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, formatNumber(data.values[i]))))),
    ),
  );
}

function axes(svg, data, ticks, y, { width, height, margin }) {
  const plotRight = width - margin.right;
  for (const tick of ticks) {
    svg.append(
      s("line", { class: "grid", x1: margin.left, x2: plotRight, y1: y(tick), y2: y(tick) }),
      s("text", { class: "tick", x: margin.left - 6, y: y(tick), "text-anchor": "end", "dominant-baseline": "middle" }, formatNumber(tick)),
    );
  }
  svg.append(s("line", { class: "axis", x1: margin.left, x2: plotRight, y1: y(Math.max(0, ticks[0])), y2: y(Math.max(0, ticks[0])) }));
  if (data.y_label) {
    svg.append(
      s("text", { class: "axis-label", transform: `translate(14 ${margin.top + (height - margin.top - margin.bottom) / 2}) rotate(-90)`, "text-anchor": "middle" }, truncate(data.y_label, 40)),
    );
  }
  if (data.x_label) {
    svg.append(s("text", { class: "axis-label", x: margin.left + (plotRight - margin.left) / 2, y: height - 6, "text-anchor": "middle" }, truncate(data.x_label, 60)));
  }
}

function xLabels(svg, labels, center, band, { height, margin }) {
  const rotate = margin.rotated;
  const limit = rotate ? 14 : Math.max(3, Math.floor(band / 7));
  labels.forEach((label, i) => {
    const x = center(i);
    const y = height - margin.bottom + 16;
    svg.append(
      s(
        "text",
        rotate
          ? { class: "tick", x, y, "text-anchor": "end", transform: `rotate(-40 ${x} ${y})` }
          : { class: "tick", x, y, "text-anchor": "middle" },
        truncate(label, limit),
      ),
    );
  });
}

function cartesian(data, { width, height, margin }) {
  const values = data.values;
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values));
  const low = ticks[0];
  const high = ticks[ticks.length - 1];
  const plotHeight = height - margin.top - margin.bottom;
  const y = (value) => margin.top + plotHeight * (1 - (value - low) / (high - low));
  const band = (width - margin.left - margin.right) / values.length;
  const center = (i) => margin.left + band * (i + 0.5);
  return { ticks, y, band, center };
}

function barChart(svg, data, size) {
  const { ticks, y, band, center } = cartesian(data, size);
  axes(svg, data, ticks, y, size);
  const width = Math.max(2, band * 0.64);
  data.values.forEach((value, i) => {
    const top = y(Math.max(0, value));
    const bottom = y(Math.min(0, value));
    svg.append(
      s(
        "rect",
        { class: "bar", x: center(i) - width / 2, y: top, width, height: Math.max(1, bottom - top), fill: COLORS[i % COLORS.length] },
        s("title", {}, `${data.labels[i]}: ${formatNumber(value)}`),
      ),
    );
    if (data.values.length <= 12) {
      svg.append(s("text", { class: "value", x: center(i), y: value >= 0 ? top - 4 : bottom + 12, "text-anchor": "middle" }, formatNumber(value)));
    }
  });
  xLabels(svg, data.labels, center, band, size);
}

function lineChart(svg, data, size) {
  const { ticks, y, band, center } = cartesian(data, size);
  axes(svg, data, ticks, y, size);
  const points = data.values.map((value, i) => `${center(i)},${y(value)}`).join(" ");
  svg.append(s("polyline", { class: "line", points, fill: "none", stroke: COLORS[0] }));
  data.values.forEach((value, i) => {
    svg.append(
      s("circle", { class: "point", cx: center(i), cy: y(value), r: 4, fill: COLORS[0] }, s("title", {}, `${data.labels[i]}: ${formatNumber(value)}`)),
    );
  });
  xLabels(svg, data.labels, center, band, size);
}

function pieChart(svg, data, { width, height }) {
  const total = data.values.reduce((sum, value) => sum + value, 0);
  const radius = (Math.min(width, height) - 24) / 2;
  const cx = width / 2;
  const cy = height / 2;
  let angle = -Math.PI / 2;
  data.values.forEach((value, i) => {
    const share = value / total;
    const color = COLORS[i % COLORS.length];
    const label = `${data.labels[i]}: ${formatNumber(value)} (${Math.round(share * 100)}%)`;
    if (share >= 0.9999) {
      svg.append(s("circle", { class: "slice", cx, cy, r: radius, fill: color }, s("title", {}, label)));
      return;
    }
    if (share <= 0) return;
    const end = angle + share * 2 * Math.PI;
    const [x1, y1] = [cx + radius * Math.cos(angle), cy + radius * Math.sin(angle)];
    const [x2, y2] = [cx + radius * Math.cos(end), cy + radius * Math.sin(end)];
    const large = end - angle > Math.PI ? 1 : 0;
    svg.append(
      s("path", { class: "slice", d: `M${cx},${cy} L${x1},${y1} A${radius},${radius} 0 ${large} 1 ${x2},${y2} Z`, fill: color }, s("title", {}, label)),
    );
    angle = end;
  });
}

function legend(data) {
  const total = data.values.reduce((sum, value) => sum + value, 0);
  return h(
    "ul",
    { class: "chart-legend" },
    data.labels.map((label, i) =>
      h(
        "li",
        {},
        h("span", { class: "swatch", style: `background:${COLORS[i % COLORS.length]}`, "aria-hidden": "true" }),
        `${label}: ${formatNumber(data.values[i])} (${Math.round((data.values[i] / total) * 100)}%)`,
      ),
    ),
  );
}

/** Room around the plot: labels turn when they would not fit side by side, and need more. */
function marginFor(data, width) {
  const band = (width - MARGIN.left - MARGIN.right) / data.values.length;
  const rotated = data.values.length > 6 || band < 48;
  return { ...MARGIN, rotated, bottom: (rotated ? 64 : 28) + (data.x_label ? 20 : 0) };
}

/** Draw (again) `data` into `svg`, `width` CSS pixels wide. */
function draw(svg, data, width) {
  const size = { width, height: heightFor(width), margin: marginFor(data, width) };
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
  svg.dataset.width = String(width);
  if (data.chart_type === "pie") pieChart(svg, data, size);
  else if (data.chart_type === "line") lineChart(svg, data, size);
  else barChart(svg, data, size);
}

// One observer for every chart: each is drawn again at its new width; one taken off the
// page (its size becomes 0) is let go.
const shown = new WeakMap(); // figure -> its data
const resized = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    const svg = target.querySelector(":scope > svg.chart");
    const width = Math.round(svg ? svg.getBoundingClientRect().width : 0);
    if (!target.isConnected || !width) resized.unobserve(target);
    else if (Math.abs(width - Number(svg.dataset.width)) >= 2) draw(svg, shown.get(target), width);
  }
});

/** A <figure> with the chart, its caption and its figures. */
export function chartFigure(data) {
  const title = data.title || "Chart";
  const svg = s("svg", {
    class: `chart chart-${data.chart_type}`,
    role: "img",
    "aria-label": describe(data),
    preserveAspectRatio: "xMidYMid meet",
  });
  draw(svg, data, DEFAULT_WIDTH);
  const figure = h(
    "figure",
    { class: "card chart-card", dataset: { chartType: data.chart_type } },
    h("figcaption", {}, title),
    svg,
    data.chart_type === "pie" ? legend(data) : null,
    dataTable(data),
  );
  shown.set(figure, data);
  resized.observe(figure);
  return figure;
}
