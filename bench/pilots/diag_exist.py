"""Focused LM diagnostic on a fresh LM over a vision pilot's encoder:
python bench/pilots/diag_exist.py VISION.pt FAMILY STEPS LR tagger|notag [--objects-in-prompt]

Logs: docs/pilots/diag-diag2-exist-*.jsonl (exist family: `tagger` = lexical tags, grounding-bias variants were
switched in the model code at the time; seed 0 throughout). With ``--objects-in-prompt`` the same
diagnostic on text only: the scene's objects are written into the prompt (log
docs/pilots/diag-diag3-exist-text.jsonl, seed 0).
"""
import sys, torch
from dataclasses import replace
from pathlib import Path
from molmo_eval.reference_model import checkpoint, train as rt
from molmo_eval.reference_model.config import ModelConfig
from molmo_eval.reference_model.data import Group
from molmo_eval.reference_model.model import MolmoModel
from molmo_eval.reference_model.vision_pretrain import tag_sizes, tag_words
from molmo_eval.reference_model.evaluate import heldout
from molmo_eval.reference_model.world.questions import ask
from molmo_eval.reference_model.world.rng import Rng, derive, train_scene_id
from molmo_eval.reference_model.world.scene import make_scene
text = "--objects-in-prompt" in sys.argv
args = [a for a in sys.argv[1:] if a != "--objects-in-prompt"]
vision, fam, steps, lr, mode = args[0], args[1], int(args[2]), float(args[3]), args[4]
fams = {f: 1.0 for f in fam.split("+")}
def make(seed, n):
    out = []
    for i in range(n):
        sc = make_scene(train_scene_id(seed, "diag", i)); rng = Rng(derive("diag", seed, i))
        qs = [q for q in (ask(sc, rng, fams) for _ in range(8)) if q]
        listing = "Objects: " + ", ".join(f"{o.colour} {o.category}" for o in sc.objects) + ". " if text else ""
        if qs: out.append(Group(sc.image, tuple((listing + q.question + "\nAnswer the question using a single word or phrase.", q.answer) for q in qs), tuple(q.family for q in qs), f"diag/{seed}/{i}"))
    return out
train_groups = make(0, 2000); held = make(99, 40)
torch.set_num_threads(2); torch.manual_seed(0)
ck = torch.load(vision)
tok = rt.build_tokenizer([t for g in train_groups for p in g.pairs for t in p])
tagger = mode == "tagger"
model = MolmoModel(replace(ModelConfig.from_json(ck["model"]), vocab_size=len(tok), tags=tag_sizes() if tagger else ()))
enc = dict(ck["encoder"])
if "head" in ck: enc |= {f"head.{k}": v for k, v in ck["head"].items() if k.startswith("proj.")}
if not tagger: enc = {k: v for k, v in enc.items() if not k.startswith("head.")}
model.vision.load_state_dict(enc)
if tagger: model.set_tag_words(tag_words(tok))
out = Path(f"runs/{'diag3' if text else 'diag2'}/{fam}-{steps}-{lr}-{mode}")
checkpoint.save(model, tok, out / "init", dtype=torch.float32)
stage = rt.StageConfig(2, "instruct", steps, 16, lr, 0.0, {"diag": 1.0}, max_pairs=8, warmup=30)
cfg = rt.TrainConfig(model.cfg, (stage,), threads=2, log_every=25, save_every=10**6, tagger=tagger)
last = rt.train(cfg, out, extra={"diag": train_groups}, init=out / "init")
model, tok, _ = checkpoint.load(last)
print("heldout", heldout(model, tok, held))
for l in open(last / "training_log.jsonl"): print(l.strip())
