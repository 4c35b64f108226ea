// Page views per day as an inline SVG bar chart (no chart library): days along the
// x axis (a dated tick every week), a y scale with round numbers and grid lines.

import { svg } from "./dom.js";

const WIDTH = 320;
const HEIGHT = 140;
const LEFT = 34; // room for the y scale's labels
const RIGHT = 4;
const TOP = 8;
const BOTTOM = 28; // room for the day labels
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Every UTC day from ``first`` to ``last`` ("2026-11-01"), at most ``limit`` of them. */
export function dayRange(first, last, limit = 400) {
  const days = [];
  const end = Date.parse(`${last}T00:00:00Z`);
  let t = Date.parse(`${first}T00:00:00Z`);
  if (Number.isNaN(t) || Number.isNaN(end)) return days;
  while (t <= end && days.length < limit) {
    days.push(new Date(t).toISOString().slice(0, 10));
    t += 86_400_000;
  }
  return days;
}

/** Round tick values from 0 to at least ``max``: 0, 5, 10, 15 or 0, 200, 400... */
export function scaleTicks(max, count = 4) {
  const raw = Math.max(max, 1) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const wholeStep = Math.max(1, Math.round(step));
  const ticks = [];
  for (let v = 0; v < max + wholeStep; v += wholeStep) {
    ticks.push(v);
    if (v >= max) break;
  }
  return ticks;
}

/** "Nov 5" for "2026-11-05". */
export function dayLabel(day) {
  const [, month, date] = day.split("-").map(Number);
  return `${MONTHS[month - 1]} ${date}`;
}

function compact(n) {
  return n >= 10_000 ? `${Math.round(n / 1000)}k` : String(n);
}

/**
 * The chart of ``analytics`` ({from, to, days: [{day, views}]}) for ``env``.
 * Days without views are drawn as zero; each bar has a tooltip.
 */
export function viewsChart(analytics, env, titleId) {
  const counts = new Map((analytics.days || []).map((d) => [d.day, Number(d.views) || 0]));
  const days = dayRange(analytics.from, analytics.to);
  const peak = Math.max(0, ...days.map((d) => counts.get(d) || 0));
  const total = days.reduce((sum, d) => sum + (counts.get(d) || 0), 0);
  const ticks = scaleTicks(peak);
  const top = ticks[ticks.length - 1];
  const plotW = WIDTH - LEFT - RIGHT;
  const plotH = HEIGHT - TOP - BOTTOM;
  const y = (v) => TOP + plotH - (v / top) * plotH;
  const step = plotW / Math.max(days.length, 1);

  const grid = ticks.map((v) => [
    svg("line", {
      class: v === 0 ? "axis" : "grid",
      x1: LEFT,
      x2: WIDTH - RIGHT,
      y1: y(v).toFixed(2),
      y2: y(v).toFixed(2),
    }),
    svg(
      "text",
      { class: "chart-label y-tick", x: LEFT - 4, y: (y(v) + 3).toFixed(2), "text-anchor": "end" },
      compact(v),
    ),
  ]);
  // A dated tick on the first day, every seventh day after it, and the last day.
  const labelled = days
    .map((day, i) => [day, i])
    .filter(([, i]) => i % 7 === 0 || i === days.length - 1)
    .filter(([, i], k, all) => i === days.length - 1 || all[k + 1][1] - i >= 4);
  const xTicks = labelled.map(([day, i]) => {
    const x = LEFT + i * step + step / 2;
    return [
      svg("line", { class: "axis", x1: x.toFixed(2), x2: x.toFixed(2), y1: TOP + plotH, y2: TOP + plotH + 3 }),
      svg(
        "text",
        {
          class: "chart-label x-tick",
          x: x.toFixed(2),
          y: HEIGHT - BOTTOM + 15,
          "text-anchor": i === 0 ? "start" : i === days.length - 1 ? "end" : "middle",
          "data-day": day,
        },
        dayLabel(day),
      ),
    ];
  });
  const bars = days.map((day, i) => {
    const views = counts.get(day) || 0;
    const height = views === 0 ? 0 : Math.max(1.5, (views / top) * plotH);
    return svg(
      "rect",
      {
        class: "bar",
        x: (LEFT + i * step + step * 0.15).toFixed(2),
        y: (TOP + plotH - height).toFixed(2),
        width: (step * 0.7).toFixed(2),
        height: height.toFixed(2),
        "data-day": day,
        "data-views": views,
      },
      svg("title", {}, `${day}: ${views} page view${views === 1 ? "" : "s"}`),
    );
  });
  const label =
    `Page views per day on ${env}, ${analytics.from} to ${analytics.to}: ` +
    `${total} in all, at most ${peak} a day`;
  return svg(
    "svg",
    {
      class: `chart chart-${env}`,
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": titleId,
      "data-testid": `chart-${env}`,
    },
    svg("title", { id: titleId }, label),
    ...grid.flat(),
    ...xTicks.flat(),
    svg(
      "text",
      { class: "chart-label axis-title", x: WIDTH - RIGHT, y: HEIGHT - 2, "text-anchor": "end" },
      "day (UTC)",
    ),
    ...bars,
  );
}
