"""The text that ROME's key statistics are measured on, without downloading Wikipedia.

ROME estimates C = E[k kᵀ], the second moment of the keys an MLP layer sees, over 100,000
Wikipedia articles that it downloads. factscope installs its corpus with the package
instead: `data/corpus.jsonl.gz`, about 400 documents of general, encyclopedic English
written by a small open model (SmolLM2-135M, Apache-2.0) from the `SEEDS` below — openings
of encyclopedia-style paragraphs about people, places, science, history, sport, culture,
technology and everyday life. Why generated text:

- nothing to download, and the same text for every model, so statistics are comparable
  across models and reproducible byte for byte;
- C only needs text *of the kind the model reads* (the keys' typical directions and
  scales), not facts that are true; published work finds a small fraction of ROME's
  Wikipedia pass enough. `docs/edit.md` measures how the edits change with the corpus size
  and with C = I (no statistics at all);
- a model-written corpus has no licence questions, and `generate_corpus` re-creates it
  (`python -m factscope.edit.corpus OUT.jsonl.gz`) or writes one in any model's own voice.

A corpus is a list of documents; `load_corpus` reads the packaged one ("default") or any
`.txt` file (documents separated by blank lines) or `.jsonl[.gz]` file ({"text": ...}).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from factscope.errors import FactscopeError
from factscope.generate import Sampling, pick_token
from factscope.model import KVCache

if TYPE_CHECKING:
    from factscope.load import LoadedModel

DEFAULT_CORPUS = "default"
PACKAGED_FILE = "corpus.jsonl.gz"

# Openings of encyclopedia-style paragraphs, the "prompts" the corpus is written from.
SEEDS: tuple[str, ...] = (
    "The history of the Roman Empire", "Photosynthesis is the process", "The city of Lisbon",
    "In economics, inflation", "The Amazon rainforest", "Marie Curie was", "The violin is",
    "Basketball is a team sport", "The French Revolution began", "A volcano is",
    "The human heart", "Jazz music originated", "The Great Wall of China", "In mathematics, a prime",
    "The printing press", "Tokyo is the capital", "The Olympic Games", "Coffee is a drink",
    "The theory of evolution", "Mount Kilimanjaro", "The Industrial Revolution", "Chess is",
    "The planet Mars", "William Shakespeare wrote", "The Nile river", "A computer program",
    "The Renaissance was", "Football, also called soccer,", "The immune system", "Bread is made",
    "The Pacific Ocean", "Ancient Egypt", "The piano was invented", "Electricity is",
    "The United Nations", "Rice is grown", "The Moon orbits", "Albert Einstein developed",
    "The Eiffel Tower", "Climate change refers", "The Beatles were", "A democracy is",
    "The Sahara desert", "Tennis is played", "The steam engine", "Vaccines work by",
    "The city of Cairo", "Buddhism is", "The internet began", "Whales are mammals",
    "The Roman Colosseum", "Baseball is a bat-and-ball game", "The periodic table",
    "Brazil is the largest", "Leonardo da Vinci was", "The Cold War", "Honey bees live",
    "The city of Chicago", "Gravity is the force", "The Mona Lisa", "Golf originated",
    "The Byzantine Empire", "Antibiotics are", "The Andes mountains", "Jane Austen's novels",
    "Cricket is a sport", "The stock market", "The Danube river", "A hurricane forms",
    "The Ottoman Empire", "Ice hockey is", "DNA carries", "The city of Mumbai",
    "Classical music", "The Apollo program", "Wine has been made", "The Himalayas",
    "Napoleon Bonaparte", "A black hole is", "The Tour de France", "Paper was invented",
    "The city of Sydney", "Opera is a form", "The Mayan civilization", "Earthquakes occur",
    "The Amazon company", "Swimming is", "The human brain", "The city of Toronto",
    "Impressionism was", "The Silk Road", "Rugby union is", "Plastic is made",
    "The Mississippi River", "Isaac Newton", "The Vikings were", "A rainbow appears",
    "The city of Berlin", "Hip hop music", "The Black Death", "Boxing is a combat sport",
    "The Arctic", "Chocolate is made", "The Wright brothers", "The city of Nairobi",
    "Quantum mechanics", "The Aztec Empire", "Volleyball was invented", "Glaciers are",
    "The Louvre museum", "Trains were", "The Ming dynasty", "The city of Buenos Aires",
    "Tea is", "Sound travels", "Frida Kahlo was", "The Mediterranean Sea",
    "Cycling is", "The American Civil War", "Bacteria are", "The city of Moscow",
    "Rock and roll", "The Taj Mahal", "Marathon running", "The solar system",
    "Genghis Khan", "Cheese is made", "The Alps", "Architecture in ancient Greece",
    "Skiing is", "The city of Istanbul", "Mozart composed", "The Gulf Stream",
    "Democracy in Athens", "A library is", "The guitar", "The city of Mexico City",
    "Salt has been", "The Hubble Space Telescope", "Athletics is", "The Inca Empire",
    "Forests cover", "Charles Darwin", "The city of Rome", "Ballet is",
    "The Suez Canal", "Diamonds are", "Badminton is", "The Crusades",
    "Tides are caused", "The city of Seoul", "Film making began", "Wolves live",
    "The Great Barrier Reef", "The Meiji era", "Handball is", "Language is",
    "The city of Lagos", "Steel is", "Pablo Picasso", "The Atlantic slave trade",
    "Rivers carry", "The city of Paris", "Poetry is", "Cars were",
    "The Hundred Years' War", "Sleep is", "Table tennis", "The city of Lima",
    "Satellites orbit", "Queen Victoria", "Bamboo grows", "The Enlightenment",
    "The city of Athens", "Surfing is", "Copper is", "Ludwig van Beethoven",
    "Deserts are", "The Soviet Union", "The city of Vienna", "Farming began",
    "Telescopes are", "Nelson Mandela", "Ants live", "The city of Delhi",
    "Sculpture is", "Fishing is", "The Korean War", "Cotton is",
    "The city of Madrid", "Lightning is", "Agatha Christie", "Horse racing",
    "The Spanish Empire", "Mushrooms are", "The city of Bangkok", "Radio was",
    "Mathematics is", "Elephants are", "Hockey is", "The city of Dublin",
    "Newspapers", "Coral reefs", "Weightlifting is", "The Hanseatic League",
    "Mountains form", "The city of Stockholm", "Photography", "Wheat is",
    "The Aral Sea", "Johann Sebastian Bach", "Sumo wrestling", "The city of Havana",
    "A bridge is", "Owls are", "The Reformation", "Medicine in the Middle Ages",
    "The city of Jakarta", "Video games", "Oil is", "Roger Federer",
    "Clouds are", "The Qing dynasty", "The city of Cape Town", "Cooking is",
    "Bicycles were", "Michelangelo", "Snow forms", "The city of Prague",
    "The Amazon river", "Gymnastics is", "The Phoenicians", "Glass is made",
    "The city of Manila", "Serena Williams", "Sharks are", "The Mongol Empire",
    "The city of Warsaw", "Literature in Russia", "Jupiter is", "Fencing is",
    "The city of Kyoto", "Bees", "Hydrogen is", "Lionel Messi",
    "The city of Edinburgh", "Pottery", "The Babylonians", "Rowing is",
    "Salmon", "The city of Montreal", "Astronomy is", "Aluminium is",
    "The city of Singapore", "Tom Brady", "Dinosaurs were", "The Carolingian Empire",
    "The city of Oslo", "Folk music", "Penguins live", "Karate is",
    "The city of Florence", "Recycling is", "Michael Jordan", "The Great Depression",
    "The city of Hanoi", "Computers were", "Tigers are", "Archery is",
    "The city of Marrakesh", "Maps", "Vitamins are", "The Habsburg monarchy",
    "The city of Venice", "Wind power", "Mount Everest", "Sailing is",
    "The city of Kolkata", "Money", "Frogs are", "The Zulu Kingdom",
    "The city of Santiago", "Painting", "Uranium is", "Usain Bolt",
    "The city of Amsterdam", "Sugar is", "The Vatican", "Wrestling is",
    "The city of Shanghai", "Education in Finland", "Kangaroos are", "The Normans",
    "The city of Addis Ababa", "Theatre", "Batteries store", "Babe Ruth",
    "The city of Reykjavik", "Soap is", "The Khmer Empire", "Judo is",
    "The city of Dubai", "Printing", "Volcanoes in Iceland", "Wayne Gretzky",
)  # fmt: skip


@dataclass(frozen=True)
class Corpus:
    """Documents to measure key statistics on; `digest` names the text in cache keys."""

    name: str
    documents: tuple[str, ...]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for doc in self.documents:
            h.update(doc.encode("utf-8") + b"\0")
        return h.hexdigest()[:16]

    def n_tokens(self, tokenizer: object) -> int:
        """How many tokens the documents are for `tokenizer` (BOS not counted)."""
        encode = tokenizer.encode
        return sum(len(encode(doc, add_bos=False)) for doc in self.documents)


def load_corpus(name_or_path: str | Path = DEFAULT_CORPUS) -> Corpus:
    """The packaged corpus ("default"), or a .txt / .jsonl / .jsonl.gz file of documents."""
    if str(name_or_path) == DEFAULT_CORPUS:
        data = resources.files("factscope.edit").joinpath("data", PACKAGED_FILE)
        if not data.is_file():
            raise FactscopeError(
                f"the packaged statistics corpus {PACKAGED_FILE} is missing from this install; "
                "reinstall factscope or pass --corpus FILE"
            )
        with data.open("rb") as raw:
            return Corpus(DEFAULT_CORPUS, _read_jsonl(gzip.decompress(raw.read()).decode()))
    path = Path(name_or_path)
    if not path.is_file():
        raise FactscopeError(
            f"statistics corpus {str(path)!r} is not a file; give a .txt or .jsonl[.gz] file "
            "or 'default'"
        )
    if path.suffix == ".gz":
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        docs = _read_jsonl(text)
    else:
        docs = tuple(d.strip() for d in text.split("\n\n") if d.strip())
    if not docs:
        raise FactscopeError(f"statistics corpus {path} holds no text")
    return Corpus(path.name, docs)


def _read_jsonl(text: str) -> tuple[str, ...]:
    docs = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                docs.append(str(json.loads(line)["text"]))
            except (ValueError, KeyError, TypeError):
                raise FactscopeError(f"corpus line {n} is not JSON with a 'text' field") from None
    return tuple(docs)


@torch.inference_mode()
def sample_continuations(
    lm: LoadedModel,
    prompts: Sequence[str],
    n_new: int,
    sampling: Sampling,
    generator: torch.Generator | None = None,
    batch_size: int = 32,
    add_bos: bool | None = None,
) -> list[list[int]]:
    """Sample `n_new` tokens after each prompt: the new token ids per prompt, cut at EOS.

    Prompts are batched by their token length (our model has no padding mask, so a batch's
    prompts must be equally long); each batch shares one KV cache and one forward per step.
    """
    model, tok = lm.model, lm.tokenizer
    encoded = [tok.encode(p, add_bos=add_bos) for p in prompts]
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    out: list[list[int]] = [[] for _ in prompts]
    eos = lm.cfg.eos_token_id
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            tokens = torch.tensor([encoded[i] for i in chunk], device=model.device)  # (B, T)
            kv = KVCache.empty(lm.cfg.n_layers)
            step = tokens
            new: list[list[int]] = [[] for _ in chunk]
            done = [False] * len(chunk)
            for _ in range(n_new):
                if tokens.shape[1] + len(new[0]) >= lm.cfg.context_length:
                    break
                logits = model(step, kv_cache=kv, logits_at="last")[:, -1]  # (B, V)
                picked = pick_token(logits, sampling, generator)  # (B,)
                for row, t in enumerate(picked.tolist()):
                    if not done[row]:
                        if eos is not None and t == eos:
                            done[row] = True
                        else:
                            new[row].append(t)
                if all(done):
                    break
                step = picked[:, None]
            for row, i in enumerate(chunk):
                out[i] = new[row]
    return out


def generate_corpus(
    lm: LoadedModel,
    n_tokens: int = 130_000,
    seeds: Sequence[str] = SEEDS,
    tokens_per_document: int = 420,
    seed: int = 0,
    progress: bool = True,
    batch_size: int = 160,
    on_batch: Callable[[list[dict[str, str]]], None] | None = None,
) -> list[dict[str, str]]:
    """Documents written by `lm` from `seeds` (temperature 1, top-p 0.95), cycling through
    the seeds until the text holds `n_tokens` of its tokens:
    [{"seed": ..., "text": seed + continuation}]. `on_batch` sees each batch as it is done
    (to save progress)."""
    from tqdm import tqdm

    generator = torch.Generator(device=lm.model.device).manual_seed(seed)
    sampling = Sampling(temperature=1.0, top_p=0.95)
    # seeds grouped by token length, so that each batch needs no padding
    by_length: dict[int, list[str]] = {}
    for s in seeds:
        by_length.setdefault(len(lm.tokenizer.encode(s)), []).append(s)
    groups = [
        g[i : i + batch_size] for g in by_length.values() for i in range(0, len(g), batch_size)
    ]
    docs: list[dict[str, str]] = []
    total = 0
    bar = tqdm(total=n_tokens, unit="tok", desc="writing corpus", disable=not progress)
    round_ = 0
    while total < n_tokens:
        for group in groups:
            new = sample_continuations(
                lm, group, tokens_per_document, sampling, generator, batch_size=batch_size
            )
            batch_docs = []
            for prompt, ids in zip(group, new, strict=True):
                text = prompt + lm.tokenizer.decode(ids)
                batch_docs.append({"seed": prompt, "round": str(round_), "text": text})
                n = len(lm.tokenizer.encode(text, add_bos=False))
                total += n
                bar.update(n)
            docs += batch_docs
            if on_batch is not None:
                on_batch(batch_docs)
            if total >= n_tokens:
                break
        round_ += 1
    bar.close()
    return docs


def write_corpus(docs: Sequence[dict[str, str]], path: Path) -> None:
    """Write documents as gzipped JSONL (the packaged format)."""
    lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    path.write_bytes(gzip.compress(lines.encode("utf-8"), mtime=0))


if __name__ == "__main__":  # python -m factscope.edit.corpus OUT.jsonl.gz [MODEL] [N_TOKENS]
    import sys

    from factscope.load import load_model

    target = Path(sys.argv[1])
    model_name = sys.argv[2] if len(sys.argv) > 2 else "smollm2-135m"
    wanted = int(sys.argv[3]) if len(sys.argv) > 3 else 130_000
    partial = target.with_suffix(".partial.jsonl")

    def append(batch: list[dict[str, str]]) -> None:
        with partial.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in batch)

    write_corpus(generate_corpus(load_model(model_name), n_tokens=wanted, on_batch=append), target)
    print(f"wrote {target}")
