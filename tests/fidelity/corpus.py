"""The fidelity corpus: notebooks of common patterns, as lists of cells.

A cell is its source, or a pair (source for the sandbox kernel, source for a local
ipykernel) where the two kernels spell the same thing differently (a Node.js cell is
`%%node` here and `%%script node` under ipykernel).
"""

from __future__ import annotations

Cell = str | tuple[str, str]

RICH_DISPLAY: list[Cell] = [
    "1 + 1",
    "print('hello'); 'result'",
    "from IPython.display import display, HTML, Markdown, Latex, JSON, Math\n"
    "display(HTML('<b>bold</b> <i>it</i>'))",
    "display(Markdown('# Title\\n\\nSome *text* and a [link](https://example.org).'))",
    "display(Latex(r'$\\alpha + \\beta$'))",
    "display(Math(r'\\int_0^1 x\\,dx'))",
    "display(JSON({'a': [1, 2, 3], 'b': {'c': None}}))",
    "h = display('first', display_id=True)\nh.update('second')",
    "from IPython.display import clear_output\nprint('gone')\nclear_output()\nprint('kept')",
    "class R:\n    def _repr_html_(self):\n        return '<table><tr><td>1</td></tr></table>'\n"
    "    def __repr__(self):\n        return 'R()'\nR()",
    "import sys\nprint('out'); print('err', file=sys.stderr); print('out again')",
    "for i in range(3):\n    print(i)",
    "x = 41\nx += 1\nx",
    "_ * 2",
    "None",
    "'a' * 3;",
]

MAGICS: list[Cell] = [
    "%%capture cap\nprint('captured')",
    "cap.stdout",
    "%%writefile note.txt\nline one\nline two",
    "print(open('note.txt').read())",
    "!echo shell out",
    "files = !ls note.txt\nfiles",
    "%%bash\necho from bash\necho to stderr >&2",
    "%env FIDELITY_VAR=1",
    "import os; os.environ['FIDELITY_VAR']",
    "%who_ls int",
    "%time y = sum(range(1000))",
    "%%timeit -n 1 -r 1\nsum(range(10))",
    "%pwd",
    "a = 5\n%config InteractiveShell.ast_node_interactivity = 'last_expr'\na",
    "%lsmagic",
]

TRACEBACKS: list[Cell] = [
    "1 / 0",
    "undefined_name",
    "def f(n):\n    if n == 0:\n        raise ValueError('deep')\n    return f(n - 1)\n\nf(3)",
    "def gen():\n    yield 1\n    raise KeyError('in a generator')\n\nlist(gen())",
    "x = (1,\n",
    "import nonexistent_module_xyz",
    "raise RuntimeError('plain')",
    "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    raise TypeError('chained') from e",
    "assert 1 == 2, 'not equal'",
    "int('nope')",
]

WARNINGS: list[Cell] = [
    "import warnings\nwarnings.warn('careful')",
    "warnings.warn('old', DeprecationWarning)",
    "def old():\n    warnings.warn('use new()', FutureWarning, stacklevel=2)\nold()",
    "warnings.simplefilter('ignore')\nwarnings.warn('silent')",
]

DATA: list[Cell] = [
    "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3], 'b': [4.5, 5.5, 6.5], "
    "'c': list('xyz')})\ndf",
    "df.describe()",
    "df.dtypes",
    "df['a'].sum()",
    "print(df.to_string())",
    "import numpy as np\nnp.arange(12).reshape(3, 4)",
    "np.array([1.5, np.nan, np.inf])",
    "from tqdm import tqdm\nfor _ in tqdm(range(3), mininterval=0, ascii=True):\n    pass",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9]);",
    "fig, ax = plt.subplots(figsize=(3, 2))\nax.bar(['a', 'b'], [3, 5])\nplt.show()",
]

NODE: list[Cell] = [
    ("%%node\nconsole.log('from node', 1 + 2)", "%%script node\nconsole.log('from node', 1 + 2)"),
    ("%%node\nconsole.log(JSON.stringify({a: [1, 2]}))",
     "%%script node\nconsole.log(JSON.stringify({a: [1, 2]}))"),
    ("%%node\nconsole.error('to stderr')", "%%script node\nconsole.error('to stderr')"),
]

NOTEBOOKS: dict[str, list[Cell]] = {
    "rich_display": RICH_DISPLAY, "magics": MAGICS, "tracebacks": TRACEBACKS,
    "warnings": WARNINGS, "data": DATA, "node": NODE,
}
