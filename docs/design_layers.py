"""Draws docs/design-layers.svg, the layers of asyncbatch (docs/design.md):
``python docs/design_layers.py docs/design-layers.svg``."""

import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch
W, H = 960, 752
plt.rcParams["svg.fonttype"] = "none"
plt.rcParams["svg.hashsalt"] = "asyncbatch"
fig = plt.figure(figsize=(W / 100, H / 100), dpi=100)
ax = fig.add_axes([0, 0, 1, 1]); ax.set_xlim(0, W); ax.set_ylim(H, 0); ax.axis("off")
SANS = ["DejaVu Sans"]; MONO = ["DejaVu Sans Mono"]
def rect(x, y, w, h, fill, stroke, rx=10, dash=False):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=f"round,pad=0,rounding_size={rx}",
                 facecolor=fill, edgecolor=stroke, linewidth=1.3, linestyle=(0, (5, 3)) if dash else "-"))
def text(x, y, s, size=13, weight="normal", anchor="middle", fill="#1f2933", mono=False):
    ha = {"middle": "center", "start": "left", "end": "right"}[anchor]
    ax.text(x, y - size * 0.35, s, fontsize=size * 0.75, fontweight=weight, ha=ha, va="center",
            color=fill, family=MONO if mono else SANS)
def arrow(x1, y1, x2, y2, color="#52606d"):
    ax.annotate("", xy=(x2, y2), xytext=(x1, y1),
                arrowprops=dict(arrowstyle="-|>", color=color, lw=1.4, mutation_scale=12))
def box(x, y, w, h, title, lines, fill, stroke):
    rect(x, y, w, h, fill, stroke)
    text(x + w / 2, y + 22, title, 14, "bold", mono=True)
    for i, line in enumerate(lines):
        text(x + w / 2, y + 42 + 16 * i, line, 12)

# band labels
bands = [(20, "what you import", "#f5f7fa"), (190, "shared by the integrations", "#f5f7fa"),
         (330, "the engine", "#f5f7fa"), (530, "the event sources", "#f5f7fa"),
         (660, "the ground floor", "#f5f7fa")]
heights = {20: 150, 190: 120, 330: 180, 530: 110, 660: 70}
for y, label, fill in bands:
    rect(10, y, W - 20, heights[y], fill, "#cbd2d9", rx=14, dash=True)
    text(24, y + 18, label.upper(), 11, "bold", anchor="start", fill="#7b8794")

# row 1: public entry points
pub = [("asyncbatch", ["the processor,", "partial responses,", "Stream, Retry"]),
       ("aws/", ["SQS sink, worker,", "S3 CSV import,", "DynamoDB store"]),
       ("runner/", ["pollers: SQS,", "Kinesis, DynamoDB", "Streams"]),
       ("testing/", ["event builders", "LambdaContext", "simulate()"]),
       ("powertools/", ["Powertools' batch", "API, drop-in"]),
       ("telemetry/", ["EMF metrics", "OpenTelemetry"]),
       ("cli/", ["commands only:", "run, consume,", "bench, demo"])]
bw, gap, x0, y1 = 120, 11, 30, 50
for i, (t, ls) in enumerate(pub):
    box(x0 + i * (bw + gap), y1, bw, 105, t, ls, "#e3f2fd", "#1e88e5")
# row 2
box(180, 215, 260, 80, "idempotency/", ["claims around each record,", "the in-memory store"], "#ede7f6", "#7e57c2")
box(520, 215, 260, 80, "_lambda/", ["the partial batch response,", "the context, call_function"], "#ede7f6", "#7e57c2")
# row 3: engine
rect(30, 355, W - 60, 160, "#e8f5e9", "#43a047")
text(W / 2, 377, "_core/", 15, "bold", mono=True)
chain = ["processor", "run", "pool", "backends"]
cx, cw, cy = 60, 150, 395
for i, name in enumerate(chain):
    x = cx + i * (cw + 40)
    rect(x, cy, cw, 44, "#ffffff", "#43a047", rx=8)
    text(x + cw / 2, cy + 27, name, 13, "bold", mono=True)
    if i:
        arrow(x - 40, cy + 22, x - 4, cy + 22, "#2e7d32")
text(cx + 3 * (cw + 40) + cw + 20, cy + 18, "asyncio, or", 12, anchor="start")
text(cx + 3 * (cw + 40) + cw + 20, cy + 34, "anyio (trio)", 12, anchor="start")
text(W / 2, 465, "what a run is made of:  handlers · limits · rate · deadline · retry · hooks · report", 13)
text(W / 2, 487, "stream (any iterable, on the same run) · loop (the per-thread event loop of the sync entry points)", 13)
# row 4: sources
rect(30, 555, W - 60, 75, "#fff8e1", "#f9a825")
text(W / 2, 577, "_sources/   one descriptor per source: records, identifiers, lanes, what a failure skips, model=, the view", 13, "bold")
text(W / 2, 603, "sqs · kinesis · dynamodb (+ dynamodb_json) · kafka · firehose · pipes · envelopes · windows · iterable", 13, mono=True)
# row 5
for i, (t, d) in enumerate([("_errors", "one error tree"), ("_frozen", "frozen objects"), ("_public", "public module names")]):
    x = 130 + i * 240
    rect(x, 677, 220, 40, "#fce4ec", "#d81b60", rx=8)
    text(x + 110, 702, f"{t}: {d}", 12, mono=False)
# arrows between layers
for x in (90, 220, 350, 480, 610, 740, 870):
    arrow(x, 157, x if x < 300 or x > 700 else x, 188)
arrow(310, 297, 310, 352)
arrow(650, 297, 650, 352)
arrow(W / 2, 517, W / 2, 552)
arrow(W / 2, 632, W / 2, 674)
text(W - 24, 742, "An arrow: the layer above imports the layer below; nothing imports upward (type hints aside).", 12, anchor="end", fill="#52606d")


for path in sys.argv[1:]:
    fig.savefig(path, metadata={"Date": None} if path.endswith(".svg") else None)
