"""Build the general-knowledge fact datasets written for factscope.

    python scripts/build_general_facts.py [--seed 0] [--only NAME]

Writes src/factscope/study/data/{city_country,company_country,person_language}.jsonl.

The facts below were written by hand for this project from general knowledge, not
extracted from a database, and limited to facts we are highly confident of and that do
not drift: a city's country, the country a large company is headquartered in, the language
a well-known person grew up speaking. What was left out on purpose, and why:

- **city -> country**: city names shared by well-known places in other countries
  (Valencia, Córdoba, Hyderabad, Perth, Birmingham, Alexandria, Mérida, Guadalajara,
  Salvador, Halifax, Nice); the United States and the United Kingdom as answers (their
  names are several tokens that begin like each other, " United").
- **company -> headquarters country**: companies whose legal seat and operational home
  differ or moved recently (Shell, Unilever, Airbus, Stellantis brands, Ferrari, Campari,
  Spotify, IKEA, Ferrero, Chanel), and US/UK companies (as above).
- **person -> native language**: people who grew up bilingual or whose first language is
  not the obvious one (Napoleon: Corsican; Dalí and Gaudí: Catalan; Anne Frank: German;
  Pessoa: raised in English-speaking Durban; Nabokov; Kafka; Copernicus; Russian writers
  raised largely in French such as Pushkin and Turgenev; Gorbachev).
- city names that contain their answer ("Mexico City").

Answers are country or language names that are one token for both shipped tokenizers,
except "South Korea" (two tokens; the header's `answer_tokens` marks it). Each relation's
worked example (few-shot prefix) uses a subject and an answer outside the dataset, so it
does not favour any answer class.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from factscope.study.authoring import (
    UNRELATED_PREFIXES,
    Fact,
    count_answer_tokens,
    make_records,
    write_dataset,
)
from factscope.study.datasets import Dataset, Relation
from factscope.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "factscope" / "study" / "data"
VERSION = "1"
MODELS = ("gemma-3-270m", "smollm2-135m")
SOURCE = "written for factscope from general knowledge (scripts/build_general_facts.py)"

CITY_COUNTRY = Relation(
    name="city_country",
    description="The country a city is in.",
    template="{} is a city in the country of",
    few_shot="Fact: Nairobi is a city in the country of Kenya\nFact: ",
    answers=(),  # filled from the facts below
    paraphrase_templates=(
        "{} is located in the country of",
        "The city of {} lies in the country of",
        "{} can be found in the country of",
    ),
)
CITIES: dict[str, list[str]] = {
    "France": ["Paris", "Lyon", "Marseille", "Bordeaux", "Lille", "Nantes", "Strasbourg",
               "Montpellier", "Rennes", "Grenoble"],
    "Germany": ["Berlin", "Munich", "Hamburg", "Cologne", "Stuttgart", "Düsseldorf", "Dresden",
                "Leipzig", "Nuremberg", "Bremen"],
    "Italy": ["Rome", "Milan", "Naples", "Turin", "Venice", "Bologna", "Genoa", "Palermo",
              "Verona", "Bari"],
    "Spain": ["Madrid", "Barcelona", "Seville", "Bilbao", "Zaragoza", "Málaga", "Granada",
              "Alicante", "Pamplona"],
    "Japan": ["Tokyo", "Osaka", "Kyoto", "Yokohama", "Nagoya", "Sapporo", "Kobe", "Fukuoka",
              "Hiroshima", "Nagasaki"],
    "China": ["Beijing", "Shanghai", "Guangzhou", "Shenzhen", "Chengdu", "Wuhan", "Nanjing",
              "Hangzhou", "Tianjin", "Chongqing"],
    "India": ["Mumbai", "Kolkata", "Chennai", "Bangalore", "Pune", "Ahmedabad", "Jaipur",
              "Lucknow", "Varanasi"],
    "Brazil": ["São Paulo", "Rio de Janeiro", "Brasília", "Recife", "Fortaleza",
               "Belo Horizonte", "Curitiba", "Manaus", "Porto Alegre"],
    "Canada": ["Toronto", "Vancouver", "Montreal", "Calgary", "Edmonton", "Winnipeg", "Ottawa",
               "Quebec City"],
    "Australia": ["Sydney", "Melbourne", "Brisbane", "Adelaide", "Canberra", "Hobart"],
    "Russia": ["Moscow", "Saint Petersburg", "Novosibirsk", "Yekaterinburg", "Kazan",
               "Vladivostok", "Volgograd"],
    "Mexico": ["Monterrey", "Tijuana", "Puebla", "Cancún", "Acapulco",
               "Ciudad Juárez"],
    "Poland": ["Warsaw", "Kraków", "Gdańsk", "Wrocław", "Poznań", "Łódź"],
    "Turkey": ["Istanbul", "Ankara", "Izmir", "Antalya", "Bursa"],
    "Egypt": ["Cairo", "Luxor", "Aswan", "Giza", "Port Said"],
    "Argentina": ["Buenos Aires", "Rosario", "Mendoza", "La Plata", "Mar del Plata"],
    "Sweden": ["Stockholm", "Gothenburg", "Malmö", "Uppsala"],
    "Netherlands": ["Amsterdam", "Rotterdam", "Utrecht", "Eindhoven", "The Hague"],
    "Greece": ["Athens", "Thessaloniki", "Patras", "Heraklion"],
    "Portugal": ["Lisbon", "Porto", "Braga", "Coimbra"],
    "Norway": ["Oslo", "Bergen", "Trondheim", "Stavanger", "Tromsø"],
    "South Korea": ["Seoul", "Busan", "Incheon", "Daegu"],
}  # fmt: skip

COMPANY_COUNTRY = Relation(
    name="company_country",
    description="The country a company has its headquarters in.",
    template="{} is headquartered in the country of",
    few_shot="Fact: Nokia is headquartered in the country of Finland\nFact: ",
    answers=(),
    paraphrase_templates=(
        "{} has its headquarters in the country of",
        "The headquarters of {} are in the country of",
        "The company {} is based in the country of",
    ),
)
COMPANIES: dict[str, list[str]] = {
    "Japan": ["Toyota", "Honda", "Sony", "Nintendo", "Panasonic", "Canon", "Nikon", "Toshiba",
              "Hitachi", "Yamaha", "Subaru", "Mazda", "Fujitsu", "Bridgestone", "Casio"],
    "Germany": ["Volkswagen", "BMW", "Siemens", "Adidas", "Bosch", "SAP", "Bayer", "BASF",
                "Porsche", "Lufthansa", "Allianz", "Deutsche Bank", "Audi", "Henkel",
                "Deutsche Telekom"],
    "France": ["Renault", "Michelin", "L'Oréal", "Danone", "TotalEnergies", "Carrefour",
               "Hermès", "Air France", "Sanofi", "Alstom", "AXA", "BNP Paribas", "Ubisoft",
               "Saint-Gobain"],
    "Italy": ["Lamborghini", "Pirelli", "Gucci", "Prada", "Barilla", "Benetton", "Ducati",
              "Eni", "Lavazza", "Bulgari", "Olivetti", "UniCredit", "Piaggio"],
    "South Korea": ["Samsung", "Hyundai", "LG Electronics", "Kia", "SK Hynix", "Posco",
                    "Naver"],
    "Sweden": ["Volvo", "Ericsson", "H&M", "Electrolux", "Saab", "Scania", "Husqvarna",
               "Atlas Copco"],
    "Switzerland": ["Nestlé", "Novartis", "Roche", "Rolex", "Swatch", "UBS", "ABB", "Lindt",
                    "Glencore", "Victorinox"],
    "Netherlands": ["Philips", "Heineken", "ING", "KLM", "ASML", "TomTom", "Randstad",
                    "AkzoNobel"],
    "China": ["Huawei", "Alibaba", "Tencent", "Lenovo", "Xiaomi", "BYD", "Haier", "Baidu",
              "ZTE", "Sinopec"],
    "Denmark": ["Lego", "Maersk", "Carlsberg", "Novo Nordisk", "Pandora", "Vestas",
                "Bang & Olufsen"],
    "Canada": ["Bombardier", "BlackBerry", "Shopify", "Lululemon", "Tim Hortons", "Manulife",
               "Enbridge"],
    "Taiwan": ["Acer", "Asus", "HTC", "Foxconn", "TSMC", "MediaTek"],
    "Spain": ["Zara", "Telefónica", "Iberia", "Repsol", "Inditex", "Iberdrola", "BBVA"],
    "India": ["Infosys", "Wipro", "Mahindra", "Tata Consultancy Services",
              "Reliance Industries"],
    "Austria": ["Red Bull", "Swarovski", "KTM", "OMV"],
}  # fmt: skip

PERSON_LANGUAGE = Relation(
    name="person_language",
    description="The language a well-known person grew up speaking (mother tongue).",
    template="The native language of {} is",
    few_shot="Fact: The native language of Nelson Mandela is Xhosa\nFact: ",
    answers=(),
    paraphrase_templates=(
        "The mother tongue of {} is",
        "{} grew up speaking",
        "{}'s first language is",
    ),
)
PEOPLE: dict[str, list[str]] = {
    "French": ["Emmanuel Macron", "Victor Hugo", "Charles de Gaulle", "Voltaire", "Molière",
               "Marcel Proust", "Jean-Paul Sartre", "Claude Monet", "Édith Piaf",
               "Gérard Depardieu", "François Mitterrand", "Jules Verne", "Émile Zola",
               "Simone de Beauvoir", "Louis Pasteur", "René Descartes", "Catherine Deneuve"],
    "Russian": ["Vladimir Putin", "Leo Tolstoy", "Fyodor Dostoevsky", "Anton Chekhov",
                "Boris Yeltsin", "Yuri Gagarin",
                "Pyotr Tchaikovsky", "Sergei Rachmaninoff", "Maxim Gorky",
                "Dmitry Medvedev", "Boris Pasternak", "Alexander Solzhenitsyn"],
    "German": ["Angela Merkel", "Johann Wolfgang von Goethe", "Friedrich Schiller",
               "Ludwig van Beethoven", "Immanuel Kant", "Friedrich Nietzsche", "Karl Marx",
               "Albert Einstein", "Thomas Mann", "Martin Luther", "Johann Sebastian Bach",
               "Richard Wagner", "Helmut Kohl", "Otto von Bismarck", "Max Planck",
               "Michael Schumacher", "Steffi Graf"],
    "Italian": ["Dante Alighieri", "Galileo Galilei", "Giuseppe Verdi", "Luciano Pavarotti",
                "Silvio Berlusconi", "Sophia Loren", "Federico Fellini", "Umberto Eco",
                "Giacomo Puccini", "Niccolò Machiavelli", "Enrico Fermi", "Andrea Bocelli",
                "Marcello Mastroianni", "Roberto Benigni", "Antonio Vivaldi", "Italo Calvino"],
    "Spanish": ["Pablo Picasso", "Miguel de Cervantes", "Penélope Cruz",
                "Gabriel García Márquez", "Pablo Neruda", "Fidel Castro", "Frida Kahlo",
                "Lionel Messi", "Diego Maradona", "Julio Iglesias", "Antonio Banderas",
                "Pedro Almodóvar", "Mario Vargas Llosa", "Octavio Paz", "Simón Bolívar",
                "Hugo Chávez", "Javier Bardem"],
    "Japanese": ["Hayao Miyazaki", "Akira Kurosawa", "Haruki Murakami", "Yoko Ono",
                 "Shinzo Abe", "Hideo Kojima", "Yukio Mishima", "Shigeru Miyamoto",
                 "Ichiro Suzuki", "Yasunari Kawabata", "Takeshi Kitano"],
    "Portuguese": ["Cristiano Ronaldo", "José Saramago", "Pelé", "Neymar", "Ronaldinho",
                   "Paulo Coelho", "Gisele Bündchen", "Ayrton Senna", "Vasco da Gama",
                   "José Mourinho", "Caetano Veloso", "António Guterres"],
    "Dutch": ["Vincent van Gogh", "Rembrandt", "Johan Cruyff", "Mark Rutte", "Piet Mondrian",
              "Johannes Vermeer", "Arjen Robben", "Christiaan Huygens", "M. C. Escher",
              "Ruud Gullit"],
    "Swedish": ["Greta Thunberg", "Ingmar Bergman", "Alfred Nobel", "Astrid Lindgren",
                "Björn Borg", "Carl Linnaeus", "Greta Garbo", "Ingrid Bergman",
                "August Strindberg", "Olof Palme", "Dag Hammarskjöld"],
    "Polish": ["Lech Wałęsa", "Frédéric Chopin", "Marie Curie", "Andrzej Duda",
               "Robert Lewandowski", "Wisława Szymborska", "Andrzej Wajda", "Stanisław Lem",
               "Adam Mickiewicz", "Donald Tusk"],
    "English": ["William Shakespeare", "Charles Dickens", "Abraham Lincoln",
                "Winston Churchill", "Jane Austen", "Mark Twain", "Elvis Presley",
                "Charles Darwin", "Isaac Newton", "Ernest Hemingway"],
}  # fmt: skip

BUILDS: dict[str, tuple[Relation, dict[str, list[str]]]] = {
    "city_country": (CITY_COUNTRY, CITIES),
    "company_country": (COMPANY_COUNTRY, COMPANIES),
    "person_language": (PERSON_LANGUAGE, PEOPLE),
}


def build(name: str, seed: int, tokenizers: dict[str, Tokenizer]) -> Dataset:
    """The dataset `name`: its relation with the answer set of its table, and records."""
    template, table = BUILDS[name]
    relation = Relation(
        name=template.name,
        description=template.description,
        template=template.template,
        few_shot=template.few_shot,
        answers=tuple(table),
        paraphrase_templates=template.paraphrase_templates,
        kl_prompt=template.kl_prompt,
    )
    facts = [Fact(s, answer, SOURCE) for answer, subjects in table.items() for s in subjects]
    return Dataset(
        name=name,
        version=VERSION,
        relation=relation,
        records=make_records(relation, facts, UNRELATED_PREFIXES, seed=seed),
        answer_tokens={m: count_answer_tokens(t, relation.answers) for m, t in tokenizers.items()},
        notes="Hand-written general-knowledge facts; see scripts/build_general_facts.py "
        "for what was left out and why.",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=sorted(BUILDS))
    parser.add_argument("--out-dir", type=Path, default=DATA)
    args = parser.parse_args()

    from factscope.load import load_model

    tokenizers = {m: load_model(m).tokenizer for m in MODELS}
    for name in [args.only] if args.only else list(BUILDS):
        dataset = build(name, args.seed, tokenizers)
        path = args.out_dir / f"{name}.jsonl"
        write_dataset(dataset, path)
        per_answer = {a: len(rs) for a, rs in dataset.by_answer().items()}
        multi = {m: [a for a, n in c.items() if n > 1] for m, c in dataset.answer_tokens.items()}
        print(f"{name}: {len(dataset)} records -> {path}")
        print(f"  per answer: {per_answer}")
        print(f"  multi-token answers: {multi}")


if __name__ == "__main__":
    main()
