"""Micro LM test: can the decoder learn in-context existence ("Objects: red kite, blue ball. Is there a kite?")?
python bench/pilots/diag_micro.py LR STEPS [layers dim heads] [wd]

Text only, no image. Logs (step, loss, seconds): docs/pilots/diag-micro-*.txt (seed 0).
"""
import sys, random, time, torch, math
from dataclasses import replace
from molmo_eval.reference_model.config import preset
from molmo_eval.reference_model.model import MolmoModel
from molmo_eval.reference_model.tokenizer import Tokenizer
from molmo_eval.reference_model.processing import collate
from molmo_eval.reference_model import train as rt
torch.set_num_threads(1); torch.manual_seed(0); random.seed(0)
lr, steps = float(sys.argv[1]), int(sys.argv[2])
L, D, H = (int(x) for x in sys.argv[3:6]) if len(sys.argv) > 5 else (4, 192, 6)
wd = float(sys.argv[6]) if len(sys.argv) > 6 else 0.05
cats = "person car tree house flower ball cup clock kite sign circle square triangle star heart diamond hexagon".split()
cols = "red green blue yellow orange purple pink brown black white gray".split()
words = ["Objects", ":", ",", ".", "Is", "there", "a", "an", "?", "yes", "no"] + cats + cols
tok = Tokenizer(words)
MODE = sys.argv[7] if len(sys.argv) > 7 else "single"
def multi(rng):
    objs = [(rng.choice(cols), rng.choice(cats)) for _ in range(rng.randint(3, 8))]
    present = {c for _, c in objs}
    qs = []
    for _ in range(10):
        want = rng.random() < 0.5
        c = rng.choice(sorted(present)) if want else rng.choice([x for x in cats if x not in present])
        qs.append(f"{c} {'yes' if want else 'no'}")
    return ("Objects: " + ", ".join(f"{a} {b}" for a, b in objs) + ". Is there", " ".join(qs))
def first(rng):
    objs = [(rng.choice(cols), rng.choice(cats)) for _ in range(rng.randint(3, 8))]
    return ("Objects: " + ", ".join(f"{a} {b}" for a, b in objs) + ". Is there", objs[0][1])
def example(rng):
    objs = [(rng.choice(cols), rng.choice(cats)) for _ in range(rng.randint(3, 8))]
    want = rng.random() < 0.5
    present = {c for _, c in objs}
    c = rng.choice(sorted(present)) if want else rng.choice([x for x in cats if x not in present])
    return ("Objects: " + ", ".join(f"{a} {b}" for a, b in objs) + f". Is there a {c} ?", "yes" if want else "no")
POS = sys.argv[8] if len(sys.argv) > 8 else "rope"
cfg = preset("default", vocab_size=len(tok), layers=L, dim=D, heads=H, positions=POS)
m = MolmoModel(cfg)
stage = rt.StageConfig(2, "x", steps, 16, lr, 0.0, {}, warmup=30, weight_decay=wd)
opt = rt.make_optimizer(m, stage)
img = __import__("numpy").full((32, 32, 3), 128, "uint8")
feats = torch.zeros(16, cfg.grid * cfg.grid, cfg.vit_dim)
rng = random.Random(0); t0 = time.time(); hist = []
for step in range(steps):
    if MODE == "first":
        rows = [(img, [first(rng) for _ in range(8)]) for _ in range(16)]
    elif MODE == "multi" or (MODE.startswith("multi-then") and step < int(MODE.split("-")[-1])):
        rows = [(img, [multi(rng) for _ in range(4)]) for _ in range(16)]
    else:
        rows = [(img, [example(rng) for _ in range(8)]) for _ in range(16)]
    b = collate(tok, rows, cfg.image_size, "answer", 192, pixels=False)
    hist.append(rt.train_step(m, opt, b, stage, step, feats))
    if (step + 1) % 50 == 0:
        print(step + 1, round(sum(hist[-50:]) / 50, 4), round(time.time() - t0), flush=True)
