"""Build the athlete -> sport dataset from the raw candidate lists.

    python scripts/build_athletes.py [--raw ../shared/data/athletes] [--seed 0]

Reads the three raw lists (2,000 names each; see that folder's README for provenance),
cleans them with the explicit rules below, and writes
src/factscope/study/data/athlete_sport.jsonl. The package itself never reads the raw
lists: the JSONL is the packaged artefact, and this script is how it was made.

Cleaning, in order (the script prints the count after each step):

1. **Normalise** each line: Unicode NFC (diacritics are KEPT as listed: "Martín
   Gramática" is how the model most likely read the name), curly quotes -> straight,
   runs of whitespace -> one space, ", Jr." / ", Sr." / ", II" -> " Jr." etc. (the comma
   only separates a suffix). Nicknames in double quotes (Ed "Too Tall" Jones) are kept:
   they are part of the name as written.
2. **Drop malformed names**: empty lines, names still holding a comma or a digit
   ("2 Chainz"), initials only ("B. D."), and one-word names unless they are listed in
   `MONONYMS` (most one-word entries are ring names or characters: "Sasquatch", "Ryback").
3. **Drop duplicates within a list** (same name up to case and spacing; the first is kept).
4. **Drop names listed under two or more sports**, every copy of them: either a
   multi-sport athlete (Charlie Ward, Jim Thorpe) or two people sharing a name (Anthony
   Davis) -- the answer is ambiguous either way.
5. **Drop teams**: names whose last word is the nickname of an NBA, MLB or NFL team
   ("Dallas Mavericks"), plus `EXCLUDED` entries marked "team".
6. **Drop the non-players we can identify** in `EXCLUDED`: coaches, executives and
   owners, actors, musicians, professional wrestlers, athletes of other sports,
   politicians and broadcasters, each with the reason. This list was made by reading
   the lists, not from a database: it is not exhaustive, and the model-based filter of
   `factscope know` (p(correct sport) > 0.5) is what keeps the known facts in the end.

The counterfactual answer, paraphrases and neighbourhood prompts come from
`factscope.study.authoring.make_records` (seeded per subject).
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from collections import Counter
from pathlib import Path

from factscope.study.authoring import (
    UNRELATED_PREFIXES,
    Fact,
    count_answer_tokens,
    make_records,
    write_dataset,
)
from factscope.study.datasets import Dataset, Relation, subject_key

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RAW = ROOT.parent / "shared" / "data" / "athletes"
OUT = ROOT / "src" / "factscope" / "study" / "data" / "athlete_sport.jsonl"
VERSION = "1"
MODELS = ("gemma-3-270m", "smollm2-135m")

# raw file -> the sport it lists (the answer, typed without the leading space)
FILES = {
    "basketball-players.txt": "basketball",
    "baseball-players.txt": "baseball",
    "american-football-players.txt": "football",
}
# Full provenance is in study/data/README.md; each record names its raw list.
SOURCE = "UFO-101/auto-circuit@98db58c datasets/sports-players/{file}; scripts/build_athletes.py"

RELATION = Relation(
    name="athlete_sport",
    description="The sport a professional athlete plays: basketball, baseball or "
    "(American) football.",
    template="{} plays the sport of",
    few_shot="Fact: Tiger Woods plays the sport of golf\nFact: ",
    answers=("basketball", "baseball", "football"),
    paraphrase_templates=(
        "{} is a professional athlete who plays",
        "{} is best known for playing",
        "The sport {} is famous for is",
        "{} played professional",
    ),
    kl_prompt="{} is a",
)

# One-word names that are real players of the sport they are listed under.
MONONYMS = {"Nenê"}

# Nicknames of the NBA, MLB and NFL teams: a name ending in one of these is a team.
TEAM_NICKNAMES = {
    # NBA
    "Hawks", "Celtics", "Nets", "Hornets", "Bulls", "Cavaliers", "Mavericks", "Nuggets",
    "Pistons", "Warriors", "Rockets", "Pacers", "Clippers", "Lakers", "Grizzlies", "Heat",
    "Bucks", "Timberwolves", "Pelicans", "Knicks", "Thunder", "Magic", "76ers", "Suns",
    "Blazers", "Kings", "Spurs", "Raptors", "Jazz", "Wizards", "SuperSonics", "Sonics",
    "Bobcats", "Bullets",
    # MLB
    "Diamondbacks", "Braves", "Orioles", "Sox", "Cubs", "Reds", "Guardians", "Indians",
    "Rockies", "Tigers", "Astros", "Royals", "Angels", "Dodgers", "Marlins", "Brewers",
    "Twins", "Mets", "Yankees", "Athletics", "Phillies", "Pirates", "Padres", "Giants",
    "Mariners", "Cardinals", "Rays", "Rangers", "Jays", "Nationals", "Expos",
    # NFL
    "Bills", "Dolphins", "Patriots", "Jets", "Ravens", "Bengals", "Browns", "Steelers",
    "Texans", "Colts", "Jaguars", "Titans", "Broncos", "Chiefs", "Raiders", "Chargers",
    "Cowboys", "Eagles", "Commanders", "Redskins", "Bears", "Lions", "Packers", "Vikings",
    "Falcons", "Panthers", "Saints", "Buccaneers", "49ers", "Seahawks", "Oilers", "Rams",
}  # fmt: skip

# Entries identified as not (mainly) players of the listed sport, by reading the lists.
# Names are as after normalisation (step 1); the build fails if one is in no list (a typo).
# Someone who played professionally and later coached stays in unless coaching is what they
# are known for; a famous namesake (another person far better known under the same name)
# is dropped because the model cannot tell which one is meant.
NOT_PLAYERS: dict[str, list[str]] = {
    "coach": [
        # basketball
        "Jim Calhoun", "Chuck Daly", "Svetislav Pešić", "James Naismith", "Dean Smith",
        "Jim Valvano", "Denny Crum", "Murat Didin", "Rick Majerus", "Fotios Katsikaris",
        "Jerry Tarkanian", "Red Auerbach", "Rick Carlisle", "Geno Auriemma", "Tex Winter",
        "Ed Jucker", "Adolph Rupp", "Elmer Ripley", "Erik Spoelstra", "Paul Westhead",
        "Johnny Bach", "Harry Litwack", "Chip Engelland", "Božidar Maljković", "Dušan Ivković",
        "Mirko Novosel", "Ranko Žeravica", "Jack McKinney", "Joe Hutton", "Giorgos Bartzokas",
        "Mike Schuler", "John Calipari", "Billy Donovan", "Bob Hill", "John Thompson",
        "Lou Carnesecca", "Clarence \"Big House\" Gaines", "Edgar Diddle", "Gene Keady",
        "Jack Hartman", "Dutch Lonborg", "Clifford Carlson", "Arthur Schabinger",
        # baseball
        "Walter Alston", "Joe McCarthy", "Fredi González", "Mike Quade", "Rod Dedeaux",
        "Len Ceglarski",
        # American football
        "Nick Saban", "Jack Bicknell", "Brian Kelly", "Bear Bryant", "Ted Tollner",
        "Bill Parcells", "Jon Gruden", "Jim Grobe", "Dudley DeGroot", "Barry Switzer",
        "Brad Childress", "Dennis Green", "Mike McCarthy", "Romeo Crennel", "Jack Elway",
        "Harold Crisler", "Joe Paterno", "Greg Schiano", "Vince Lombardi", "Joe Philbin",
        "Al Saunders", "Marvin Lewis", "John Fox", "Tony Dungy", "Tom Cable", "Chuck Pagano",
        "Bill Cowher", "Bobby Bowden", "Brian Billick", "Steve Spagnuolo", "Bob Wylie",
        "Chuck Noll", "Paul Brown", "Bud Grant", "Leslie Frazier", "Raheem Morris",
        "Buddy Parker", "Chuck Fairbanks", "Tony Sparano", "John Harbaugh", "Sean Payton",
        "Tom Osborne", "Jason Garrett", "Andy Reid", "Doug Marrone", "Herman Edwards",
        "Chan Gailey", "Eric Mangini", "Greg Knapp", "Hue Jackson", "Jason Tarver",
        "Jim Caldwell", "Jim Michalczik", "Joe Avezzano", "Rob Chudzinski", "John Fassel",
        "Alex Gibbs", "Al Groh", "Al Golden", "Bobby April", "Ben Schwartzwalder",
        "Chuck Bresnahan", "Urban Meyer", "Hank Stram", "Weeb Ewbank", "Jack Del Rio",
        "Greasy Neale",
    ],
    "executive, owner, scout or official": [
        "Avery Brundage", "Abe Saperstein", "Danny Biasone", "Jerry Buss", "Stu Jackson",
        "Stu Inman", "Issa Hayatou", "Philip Craven", "Paul Tagliabue", "Richard Parsons",
        "Barney Dreyfuss", "Branch Rickey", "Alex Pompez", "Leland Stanford MacPhail Jr.",
        "Charles Comiskey", "Ban Johnson", "Ed Barrow", "Rod Thorn", "Happy Chandler",
        "William Ambrose Hulbert", "Brian Cashman", "Mike Rizzo", "Ford Christopher Frick",
        "Paul Krichell", "Dan Duquette", "Dan Jennings", "Dave Gavitt", "Larry Riley",
        "Jocko Conlan", "Doug Harvey", "Bob Sheppard", "Buddy Blattner", "George Marshall",
        "Lamar Hunt", "Ryan Grigson", "Suge Knight", "Scott Pioli", "Thomas Dimitroff",
        "Art Rooney",
    ],
    "actor, musician or entertainer": [
        "Nick Nolte", "Tom Selleck", "J. Cole", "R. Kelly", "Kevin Peter Hall",
        "Mahershala Ali", "Marc Blucas", "Peter Ostrum", "Bobbito García", "Kurt Russell",
        "Billy Crystal", "George Thorogood", "Tyler Hoechlin", "Paul Gleason", "Chuck Connors",
        "John Beradino", "John Larch", "Larry Pennell", "John Houseman", "Ron Shelton",
        "Danny Gans", "Bill O'Reilly", "Eric Bolling", "Burt Reynolds", "Terry Crews",
        "Robert Patrick", "Jesse Hibbs", "Stone Phillips", "Mark Harmon", "Dean Cain",
        "Carl Weathers", "Bernie Casey", "Mark Moses", "Richard Roundtree", "Frank McRae",
        "Woody Strode", "Brad William Henke", "Don Collier", "Johnny Mack Brown",
        "Patrick Muldoon", "Bob Guiney", "Ryan Sutter", "Dan Cortese", "Plies", "2 Chainz",
    ],
    "professional wrestler or fighter": [
        "Kevin Nash", "Bernard Hopkins", "Giant Baba", "Lex Luger", "Bill Goldberg",
        "Titus O'Neil", "Brock Lesnar", "Roman Reigns", "Matt Bloom", "Wahoo McDaniel",
        "Ken Shamrock", "Gene Snitsky", "Ron Simmons", "Bob Sapp", "Blackjack Mulligan",
        "Big E", "Tully Blanchard", "Jim Neidhart", "Matt Mitrione", "Superstar Billy Graham",
        "Brian Pillman", "Verne Gagne", "Tito Santana", "Darren Drozdov", "Brendan Schaub",
        "Kevin Von Erich", "Afa Anoa'i Jr.", "Ryback",
    ],
    "athlete of another sport": [
        "Carl Lewis", "Jackie Joyner-Kersee", "Marion Jones", "Esther Vergeer",
        "Micheline Ostermeyer", "Carlota Castrejana", "Abel Kiviat", "Steve Bloomer",
        "Platt Adams", "Frank Irons", "Jack McCartan", "Edward Lindberg", "Theoren Fleury",
        "Ian Chappell", "Neil Johnston", "Ricky Williams", "Mike Ditka", "Ernie Nevers",
        "Nathaniel Clifton", "Jimmy Conzelman", "George Horine", "Ira Davenport",
        "Howard Drew", "Ken Kavanaugh", "Jason Sehorn", "Matt Cassel", "Brandon Weeden",
        "Eric Decker", "Pat White", "Quan Cosby", "Mewelde Moore", "Willie O'Ree",
        "Masashi Ozaki", "Michél Mazingu-Dinzey", "Milt Campbell", "Ingo Anderbrügge",
        "Jim Hines", "Jack Yerman", "Dwain Chambers", "John Carlos", "Gavin Hastings",
        "Quincy Watts", "Henry Carr", "Clive Allen", "Glenn Morris", "Ray Barbuti",
        "Ray Norton", "Renaldo Nehemiah", "Pat Nevin", "Dink Templeton", "Jeremy Bloom",
        "Alvin Dark", "Alan Ball",
    ],
    "politician, judge or official": [
        "Franz Vranitzky", "Raymond Flynn", "Edi Rama", "Arne Duncan", "Scotty Baesler",
        "Stefaan De Clerck", "Bill Richardson", "Arthur Pue Gorman", "Mario Cuomo",
        "Joe Kernan", "George P. Codd", "Raymond Joseph Cannon", "Ronald M. Mottl",
        "Jack Kemp", "Charlie Crist", "Endicott Peabody", "Edward J. King", "Robert Bacon",
        "J. C. Watts", "James Traficant", "Bibb Graves", "John Sherman Cooper",
        "Kurt Schumacher", "Robert R. Thomas", "Jerry Brown", "William C. Marland",
        "Luke Ravenstahl", "Everett J. Lake", "Byron White", "William B. Bankhead",
        "Christie Benet", "Winfield K. Denton", "Clint Didier", "Archibald Vincent Arnold",
    ],
    "known for something else (writer, scientist, preacher, criminal, astronaut)": [
        "Zane Grey", "Stephen Crane", "Masaoka Shiki", "Frank Bettger", "Billy Sunday",
        "Alfred Lawson", "Lynn Compton", "Herbert Blumer", "Kevin Granata", "Leland D. Melvin",
        "Randall Woodfield", "Jack Lummus",
    ],
    "fictional character": [
        "Flash Gordon", "Booster Gold", "Clark Kent", "Al Bundy", "Anthony Soprano Jr.",
        "Yoichi Hiruma", "Bullwinkle J. Moose", "Michael Scott", "Sasquatch", "Thing",
        "Cyborg",
    ],
    "famous namesake": [
        "Bobby Brown", "Ron Howard", "James Stewart", "Fred Vinson", "David Simon",
        "Gordon Scott", "George Dixon", "John Brown", "Ron Carter", "Don Carlos",
        "Justin Thomas", "John Paul Jones", "Curt Smith", "Víctor Cruz", "Ronnie Coleman",
        "Chris Cooper", "John Hughes", "Bruce Campbell", "Ed Bradley", "Mike Wallace",
        "Alex Gordon", "Mark Jackson", "Adam Jones", "Larry Johnson", "Bill Lee",
        "Billy Hunter",
    ],
    "team": ["Dallas Mavericks"],
}  # fmt: skip
EXCLUDED: dict[str, str] = {name: reason for reason, names in NOT_PLAYERS.items() for name in names}
assert len(EXCLUDED) == sum(map(len, NOT_PLAYERS.values())), "a name is listed twice"


def normalise(raw: str) -> str:
    """A raw line as a name: NFC, straight quotes, single spaces, no comma before Jr."""
    name = unicodedata.normalize("NFC", raw)
    name = name.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"', 0xA0: " "})
    name = " ".join(name.split())
    return re.sub(r",\s*(Jr\.?|Sr\.?|II|III|IV)$", r" \1", name)


def malformed(name: str) -> str | None:
    """Why a normalised name cannot be a subject, or None."""
    if not name:
        return "empty line"
    if "," in name:
        return "comma left in the name"
    if any(c.isdigit() for c in name):
        return "digit in the name"
    if " " not in name and name not in MONONYMS:
        return "one-word name (ring name or character)"
    if all(len(word.rstrip(".")) <= 1 for word in name.split()):
        return "initials only"
    return None


def clean(raw_dir: Path) -> tuple[list[Fact], list[tuple[str, int]]]:
    """The cleaned facts and the (step, count) trail."""
    steps: list[tuple[str, int]] = []
    listed: list[tuple[str, str, str]] = []  # (name, sport, file)
    for file, sport in FILES.items():
        lines = (raw_dir / file).read_text(encoding="utf-8").splitlines()
        listed += [(normalise(line), sport, file) for line in lines]
    steps.append(("raw lines", len(listed)))

    listed = [entry for entry in listed if malformed(entry[0]) is None]
    steps.append(("well-formed names", len(listed)))

    seen: set[tuple[str, str]] = set()
    unique = []
    for name, sport, file in listed:
        if (subject_key(name), sport) not in seen:
            seen.add((subject_key(name), sport))
            unique.append((name, sport, file))
    steps.append(("after duplicates within a list", len(unique)))

    sports_of = Counter(subject_key(name) for name, _, _ in unique)
    single = [entry for entry in unique if sports_of[subject_key(entry[0])] == 1]
    steps.append(("after names listed under 2+ sports", len(single)))

    no_teams = [e for e in single if e[0].split()[-1] not in TEAM_NICKNAMES]
    no_teams = [e for e in no_teams if EXCLUDED.get(e[0]) != "team"]
    steps.append(("after teams", len(no_teams)))

    players = [e for e in no_teams if e[0] not in EXCLUDED]
    steps.append(("after identified non-players", len(players)))
    facts = [Fact(name, sport, SOURCE.format(file=file)) for name, sport, file in players]
    return facts, steps


def answer_tokens() -> dict[str, dict[str, int]]:
    """Per shipped model, the token count of each answer (needs the real models)."""
    from factscope.load import load_model

    return {m: count_answer_tokens(load_model(m).tokenizer, RELATION.answers) for m in MODELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    every_name = {
        normalise(line)
        for file in FILES
        for line in (args.raw / file).read_text(encoding="utf-8").splitlines()
    }
    unused = sorted(set(EXCLUDED) - every_name)
    if unused:
        raise SystemExit(f"EXCLUDED names that are in no list (typo?): {unused}")
    facts, steps = clean(args.raw)
    for step, count in steps:
        print(f"{step:>40}: {count}")
    per_sport = Counter(f.answer for f in facts)
    print(f"{'per sport':>40}: {dict(per_sport)}")

    dataset = Dataset(
        name=RELATION.name,
        version=VERSION,
        relation=RELATION,
        records=make_records(RELATION, facts, UNRELATED_PREFIXES, seed=args.seed),
        answer_tokens=answer_tokens(),
        notes="Athlete candidates, cleaned but NOT filtered by what a model knows: run "
        "`factscope know --dataset athlete_sport` for the known subset. Counts per step: "
        + "; ".join(f"{step} {count}" for step, count in steps),
    )
    write_dataset(dataset, args.out)
    print(f"wrote {len(dataset)} records to {args.out}")


if __name__ == "__main__":
    main()
