// Page views per day as an inline SVG bar chart (no chart library).

import { svg } from "./dom.js";

const WIDTH = 300;
const HEIGHT = 110;
const TOP = 14; // room for the maximum's label
const BOTTOM = 16; // room for the first and last day

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

/**
 * The chart of ``analytics`` ({from, to, days: [{day, views}]}) for ``env``.
 * Days without views are drawn as zero; each bar has a tooltip.
 */
export function viewsChart(analytics, env, titleId) {
  const counts = new Map((analytics.days || []).map((d) => [d.day, Number(d.views) || 0]));
  const days = dayRange(analytics.from, analytics.to);
  const max = Math.max(1, ...days.map((d) => counts.get(d) || 0));
  const total = days.reduce((sum, d) => sum + (counts.get(d) || 0), 0);
  const plot = HEIGHT - TOP - BOTTOM;
  const step = WIDTH / Math.max(days.length, 1);
  const bars = days.map((day, i) => {
    const views = counts.get(day) || 0;
    const height = views === 0 ? 0 : Math.max(1.5, (views / max) * plot);
    return svg(
      "rect",
      {
        class: "bar",
        x: (i * step + step * 0.15).toFixed(2),
        y: (TOP + plot - height).toFixed(2),
        width: (step * 0.7).toFixed(2),
        height: height.toFixed(2),
        "data-day": day,
        "data-views": views,
      },
      svg("title", {}, `${day}: ${views} page view${views === 1 ? "" : "s"}`),
    );
  });
  const peak = total === 0 ? 0 : max;
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
    svg("line", { class: "axis", x1: 0, x2: WIDTH, y1: TOP + plot + 0.5, y2: TOP + plot + 0.5 }),
    svg("text", { class: "chart-label", x: 0, y: 10 }, `max ${peak}/day`),
    svg("text", { class: "chart-label", x: 0, y: HEIGHT - 3 }, days[0] || ""),
    svg(
      "text",
      { class: "chart-label", x: WIDTH, y: HEIGHT - 3, "text-anchor": "end" },
      days[days.length - 1] || "",
    ),
    ...bars,
  );
}
