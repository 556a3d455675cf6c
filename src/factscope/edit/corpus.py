"""The text that ROME's key statistics are measured on, without downloading Wikipedia.

ROME estimates C = E[k kᵀ], the second moment of the keys an MLP layer sees, over 100,000
Wikipedia articles that it downloads. factscope's default corpus ("self") is text the
model writes itself: continuations of ~300 short encyclopedic `SEEDS` (openings of
paragraphs about people, places, science, history, sport, culture, technology),
temperature 1 and top-p 0.95, 256 tokens each, written once per model and cached under
`$FACTSCOPE_CACHE/edit-corpus/` (an interrupted generation resumes). Why:

- nothing to download and nothing to license: every model, including ones factscope has
  never seen, gets a corpus;
- C only needs text *of the kind the model reads* — the keys' typical directions and
  scales — not facts that are true; the model's own text sits exactly on its key
  distribution, and published work finds a small fraction of ROME's Wikipedia pass enough.
  `docs/edit.md` measures how the edits change with the corpus size and with C = I;
- the cost is one generation pass per model (100,000 tokens: ~50 TFLOP for Gemma 3, whose
  262k-row unembedding dominates; minutes on an idle 8-core CPU).

The corpus of each shipped model is written once by `scripts/write_stats_corpus.py` and
ships inside the package (`factscope/edit/data/self-<weights fingerprint>-s<seed>.jsonl.gz`),
so that the first edit on a fresh install only measures the statistics (about a minute on
2 cores) instead of writing 100k tokens first (tens of minutes at 40–80 tokens/s on 2
cores). A model without a packaged corpus still gets one written; asking for more tokens
than the packaged corpus holds continues it in the cache. `--corpus FILE` takes any
`.txt` (documents separated by blank lines) or `.jsonl[.gz]` ({"text": ...}) file instead,
e.g. a Wikipedia dump you have.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from factscope.errors import FactscopeError
from factscope.generate import Sampling, pick_token
from factscope.model import KVCache
from factscope.progress import progress_bar

if TYPE_CHECKING:
    from factscope.load import LoadedModel
    from factscope.tokenizer import Tokenizer

DEFAULT_CORPUS = "self"

# Openings of encyclopedia-style paragraphs, the "prompts" the corpus is written from.
SEEDS: tuple[str, ...] = (
    "The history of the Roman Empire", "Photosynthesis is the process", "The city of Lisbon",
    "In economics, inflation", "The Amazon rainforest", "Marie Curie was", "The violin is",
    "Basketball is a team sport", "The French Revolution began", "A volcano is",
    "The human heart", "Jazz music originated", "The Great Wall of China",
    "In mathematics, a prime",
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

    def n_tokens(self, tokenizer: Tokenizer) -> int:
        """How many tokens the documents are for `tokenizer` (BOS not counted)."""
        encode = tokenizer.encode
        return sum(len(encode(doc, add_bos=False)) for doc in self.documents)


def load_corpus(
    name_or_path: str | Path = DEFAULT_CORPUS,
    lm: LoadedModel | None = None,
    n_tokens: int = 100_000,
    progress: bool = True,
) -> Corpus:
    """ "self" (the model's own text, at least `n_tokens` of it plus held-out documents; needs
    `lm`), or a .txt / .jsonl / .jsonl.gz file of documents."""
    if str(name_or_path) == DEFAULT_CORPUS:
        if lm is None:
            raise FactscopeError("the 'self' corpus is written by the model; pass the model")
        return self_corpus(lm, n_tokens + HELD_OUT_TOKENS, progress=progress)
    path = Path(name_or_path)
    if not path.is_file():
        raise FactscopeError(
            f"statistics corpus {str(path)!r} is not a file; give a .txt or .jsonl[.gz] file "
            "or 'self'"
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


HELD_OUT_TOKENS = 2_048  # written beyond the statistics' tokens: text for perplexity drift


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

    Prompts of any lengths share a batch (our model has no padding mask, so every row of a
    batch must be as long as the others at each step): the batch starts from the shortest
    prompt's length, and a row whose prompt is longer is fed its own next prompt token
    instead of the sampled one until its prompt is used up. Each batch shares one KV cache
    and one forward per step; prompts are batched in order of length, so the forced steps
    are few."""
    model, tok = lm.model, lm.tokenizer
    encoded = [tok.encode(p, add_bos=add_bos) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out: list[list[int]] = [[] for _ in prompts]
    eos = lm.cfg.eos_token_id
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        rows = [encoded[i] for i in chunk]
        fed = min(len(r) for r in rows)  # tokens of every row fed so far
        step = torch.tensor([r[:fed] for r in rows], device=model.device)  # (B, fed)
        kv = KVCache.empty(lm.cfg.n_layers)
        new: list[list[int]] = [[] for _ in chunk]
        done = [False] * len(chunk)
        while not all(done) and fed < lm.cfg.context_length:
            logits = model(step, kv_cache=kv, logits_at="last")[:, -1]  # (B, V)
            picked = pick_token(logits, sampling, generator).tolist()  # (B,)
            for row, prompt_ids in enumerate(rows):
                if fed < len(prompt_ids):  # still inside this row's prompt
                    picked[row] = prompt_ids[fed]
                elif not done[row]:
                    if eos is not None and picked[row] == eos:
                        done[row] = True
                    else:
                        new[row].append(picked[row])
                        done[row] = len(new[row]) >= n_new
            fed += 1
            step = torch.tensor(picked, device=model.device)[:, None]
        for row, i in enumerate(chunk):
            out[i] = new[row]
    return out


def generate_corpus(
    lm: LoadedModel,
    n_tokens: int,
    seeds: Sequence[str] = SEEDS,
    tokens_per_document: int = 256,
    seed: int = 0,
    chunk: int = 16,
    done: Sequence[dict[str, str]] = (),
    on_chunk: Callable[[list[dict[str, str]]], None] | None = None,
    progress: bool = True,
) -> list[dict[str, str]]:
    """Documents written by `lm` from `seeds` (temperature 1, top-p 0.95), `chunk` seeds at a
    time and cycling through the seeds, until the text holds `n_tokens` of its tokens:
    [{"seed": ..., "text": seed + continuation}]. `done` are documents of an earlier,
    interrupted call (generation resumes after them); `on_chunk` sees each new chunk."""
    docs = list(done)
    total = sum(len(lm.tokenizer.encode(d["text"], add_bos=False)) for d in docs)
    shown = min(total, n_tokens)  # what the bar counts: tokens, up to n_tokens
    bar = progress_bar(n_tokens, progress, "writing the statistics corpus", "tok",
                       initial=shown, leave=True)  # fmt: skip
    sampling = Sampling(temperature=1.0, top_p=0.95)
    while total < n_tokens:
        index = len(docs) // chunk  # chunk i uses seeds i*chunk.. (cycling), its own rng
        prompts = [seeds[(index * chunk + j) % len(seeds)] for j in range(chunk)]
        generator = torch.Generator(device=lm.model.device).manual_seed(seed * 1_000_003 + index)
        new = sample_continuations(lm, prompts, tokens_per_document, sampling, generator, chunk)
        fresh = []
        for prompt, ids in zip(prompts, new, strict=True):
            text = prompt + lm.tokenizer.decode(ids)
            fresh.append({"seed": prompt, "text": text})
            n = len(lm.tokenizer.encode(text, add_bos=False))
            total += n
            step = min(n, max(0, n_tokens - shown))
            shown += step
            bar.update(step)
        docs += fresh
        if on_chunk is not None:
            on_chunk(fresh)
    bar.close()
    return docs


def self_corpus(lm: LoadedModel, n_tokens: int, seed: int = 0, progress: bool = True) -> Corpus:
    """The model's own text: `generate_corpus` from `SEEDS`, written once per model and
    cached (`$FACTSCOPE_CACHE/edit-corpus/`); an interrupted generation resumes."""
    from factscope.edit.fingerprint import model_fingerprint
    from factscope.weights.cache import cache_root

    key = model_fingerprint(lm.model, lm.cfg.n_layers - 1)
    path = cache_root() / "edit-corpus" / f"self-{key}-s{seed}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    packaged = packaged_corpus_path(key, seed)
    if not path.exists() and packaged.is_file():  # shipped with factscope: start from it
        path.write_bytes(gzip.decompress(packaged.read_bytes()))
    done = list(_read_jsonl_dicts(path.read_text(encoding="utf-8"))) if path.exists() else []
    chunk = 16
    if len(done) % chunk:  # a chunk cut off by a kill: written again from its start
        done = done[: len(done) // chunk * chunk]
        path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in done))

    def append(batch: list[dict[str, str]]) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in batch)

    docs = generate_corpus(
        lm, n_tokens, seed=seed, chunk=chunk, done=done, on_chunk=append, progress=progress
    )
    return Corpus(f"self-{key}", tuple(d["text"] for d in docs))


def packaged_corpus_path(fingerprint: str, seed: int = 0) -> Path:
    """Where the package keeps the statistics corpus of the model with this weights
    fingerprint (`fingerprint.model_fingerprint` over every layer), written with `seed`."""
    return Path(__file__).parent / "data" / f"self-{fingerprint}-s{seed}.jsonl.gz"


def read_documents(path: Path) -> list[dict[str, str]]:
    """The documents ({"seed", "text"}) of a corpus file, plain or gzipped JSONL."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return _read_jsonl_dicts(data.decode("utf-8"))


def _read_jsonl_dicts(text: str) -> list[dict[str, str]]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break  # a line cut off by a kill: generation resumes from here
    return out


def write_corpus(docs: Sequence[dict[str, str]], path: Path) -> None:
    """Write documents as gzipped JSONL (the packaged format)."""
    lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    path.write_bytes(gzip.compress(lines.encode("utf-8"), mtime=0))


if __name__ == "__main__":  # python -m factscope.edit.corpus MODEL N_TOKENS: fill the cache
    import sys

    from factscope.load import load_model
    from factscope.registry import DEFAULT_MODEL

    lm = load_model(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL)
    corpus = self_corpus(lm, int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
    print(f"{corpus.name}: {len(corpus.documents)} documents")
