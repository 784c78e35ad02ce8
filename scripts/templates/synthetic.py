"""Small templates that pin down one jinja2 behaviour each: (name, source, messages, extra).

They cover what real chat templates lean on and where minijinja's defaults differ from jinja2:
whitespace control, printing of Python values, tojson, Python methods, filters, tests, loops,
undefined values.
"""

MSGS = [
    {"role": "system", "content": "  sys <b>&</b>  "},
    {"role": "user", "content": "héllo\n世界 🚀", "name": None},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1.0, "y": [True, None, 1e-7, 1e20]}}}],
    },
    {"role": "tool", "content": "42"},
    {"role": "user", "content": "last"},
]

WS_BLOCKS = """Header
  {% if true %}
    body
  {% endif %}
\t{% for m in messages %}
  - {{ m.role }}
\t{% endfor %}
Footer
"""

WS_MARKS = """A   {%- if true -%}   B   {%- endif -%}   C
  {%+ if true %}kept indent{% endif %}
  {{- 'x' -}}  y  {{ 'z' }}
  {# comment #}
D {# inline #} E
  {#- trimmed -#}
F
{% raw %}  {{ not rendered }} {% endraw %}
{%- set v = 'after raw' %}
{{ v }}"""

WS_TRAILING = "one\n{% if true %}\ntwo\n{% endif %}\n\n"

WS_CRLF = "a\r\n{% if true %}\r\n  b\r\n{% endif %}\r\nc {{ 'd' }}\r\n"

PRINTING = """{{ none }}|{{ true }}|{{ false }}|{{ 1.0 }}|{{ 1e20 }}|{{ 1e-7 }}|{{ 0.1 + 0.2 }}|{{ 3/2 }}|{{ 4/2 }}|{{ 7//2 }}|{{ -7//2 }}|{{ -7 % 3 }}|{{ 2**10 }}|{{ 2**-1 }}
{{ [1, 'a', none, true, 2.5] }}|{{ {'k': 'v', 'n': none} }}|{{ messages[1] }}|{{ messages[2].tool_calls }}
{{ none|string }}|{{ [1, "it's"]|string }}|{{ [none, true, 1]|join(', ') }}|{{ messages|map(attribute='role')|join('/') }}
{{ 'a' ~ 1 ~ 2.5 ~ 'b' }}|{{ 'a' ~ none ~ true ~ [1, 'b'] ~ {'k': none} ~ 2.5 }}|{{ messages[1] ~ '' }}|{{ [1.0, none]|string }}|{{ 'x' + 'y' }}|{{ 'ab' * 3 }}|{{ [1] + [2] }}|{{ 1 if none else 2 }}|{{ 'yes' if true }}|{{ 'no' if false }}|
"""

TOJSON = """{{ messages|tojson }}
{{ messages[2]|tojson(indent=2) }}
{{ messages[2].tool_calls[0].function.arguments|tojson(indent=4, sort_keys=true) }}
{{ {'b': 1, 'a': [1, {}], 'c': []}|tojson(separators=(',', ':')) }}
{{ messages[1].content|tojson(ensure_ascii=true) }}
{{ '<a href="x">\\'&\\'</a>\\t\\u0001'|tojson }}
{{ [1.5, 100, -0.0, 12345678901234567890, 1e300]|tojson }}
{{ {}|tojson(indent=2) }}{{ []|tojson(indent=2) }}{{ none|tojson }}{{ true|tojson }}
{{ {'a': {'b': [1, 2]}}|tojson(indent='--') }}
"""

METHODS = """{{ messages[0].content.strip() }}|{{ messages[0].content.lstrip() }}|{{ messages[0].content.rstrip() }}|{{ 'xxhixx'.strip('x') }}
{{ 'a,b,,c'.split(',') }}|{{ '  a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'a b'.split(' ')[-1] }}
{{ 'Hello'.startswith('He') }}|{{ 'Hello'.endswith(('x', 'lo')) }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}
{{ 'abc'.upper() }}{{ 'ABC'.lower() }}|{{ '世界abc'.find('a') }}|{{ 'banana'.count('an') }}|{{ '123'.isdigit() }}|{{ 'a\\nb'.splitlines() }}
{{ '{}-{}'.format('a', 1) }}|{{ '{0}{0}{name}'.format('x', name='y') }}|{{ '{{}}'.format() }}|{{ ', '.join(['a', 'b']) }}
{{ messages[0].get('content') }}|{{ messages[0].get('missing') }}|{{ messages[0].get('missing', 'dflt') }}|{{ messages[1].get('name', 'unset') }}
{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}|{{ messages[0].keys()|list }}|{{ messages[0].values()|list|length }}
{{ 'a=b=c'.partition('=') }}|{{ 'prefix_x'.removeprefix('prefix_') }}
"""

FILTERS = """{{ '  t  '|trim }}|{{ 'xxtxx'|trim('x') }}|{{ messages|length }}|{{ 'héllo'|length }}|{{ none|default('d') }}|{{ ''|default('e', true) }}|{{ missing|default('m') }}
{{ messages|first|attr('role') }}|{{ (messages|last).role }}|{{ 'abc'|list }}|{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }}
{{ messages|rejectattr('content', 'none')|list|length }}|{{ messages|selectattr('tool_calls', 'defined')|list|length }}|{{ messages|map(attribute='role')|unique|list }}
{{ [3, 1, 2]|sort }}|{{ ['b', 'A', 'c']|sort }}|{{ [3, 1, 2]|sort(reverse=true) }}|{{ {'b': 1, 'A': 2}|dictsort }}|{{ [1, 2, 3]|sum }}|{{ [1, 2, 3]|min }}{{ [1, 2, 3]|max }}
{{ '3'|int + 1 }}|{{ '2.5'|float }}|{{ -3|abs }}|{{ 2.567|round(2) }}|{{ [1, 2]|reverse|list }}|{{ 'aXa'|replace('a', 'b') }}|{{ 'x'|upper }}{{ 'Y'|lower }}|{{ 'ab cd'|title }}|{{ [1,2,3,4,5]|batch(2)|list }}
{{ 'a\\nb\\n'|indent }}|{{ 'a\\n\\nb'|indent(2, first=true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ '{\\n'|indent(4, first=true) }}|{{ 'x\\ny'|indent('> ') }}|
{{ {'a': 1, 'b': 2}|items|list }}|{{ messages[0]|dictsort|first }}
"""

TESTS = """{% for v in ['s', 1, 1.5, true, none, [1], {'a': 1}, messages[0], missing] %}
{{ v is string }}{{ v is number }}{{ v is integer }}{{ v is float }}{{ v is boolean }}{{ v is none }}{{ v is mapping }}{{ v is sequence }}{{ v is iterable }}{{ v is defined }}{{ v is undefined }}
{% endfor %}
{{ 'a' in 'cat' }}|{{ 'role' in messages[0] }}|{{ 2 in [1, 2] }}|{{ 'x' not in ['y'] }}|{{ messages[0].content is true }}|{{ true is true }}|{{ false is false }}
"""

LOOPS = """{% for m in messages %}
{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.cycle('odd', 'even') }}/{{ loop.previtem.role if loop.previtem is defined else '-' }}/{{ loop.nextitem.role if loop.nextitem is defined else '-' }}
{% endfor %}
{% for m in messages if m.role == 'user' %}{{ loop.index }}:{{ m.content|length }} {% endfor %}
{% for m in messages %}{% if m.role == 'tool' %}{% continue %}{% endif %}{% if loop.index > 4 %}{% break %}{% endif %}{{ m.role[0] }}{% endfor %}
{% for x in [] %}never{% else %}empty{% endfor %}
{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}
{% for m in messages %}{% for n in messages %}{% if loop.first %}{{ loop.length }}{% endif %}{% endfor %}{% endfor %}
{% set ns = namespace(count=0, last=none) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% set ns.last = m.role %}{% endfor %}{{ ns.count }} {{ ns.last }}
{% set outer = 1 %}{% for m in messages %}{% set outer = 2 %}{% endfor %}{{ outer }}
{% for item in [{'n': 'a', 'c': [{'n': 'b', 'c': []}]}] recursive %}{{ item.n }}({{ loop(item.c) }}){% endfor %}
"""

MACROS_AND_BLOCKS = """{% macro render(m, prefix='> ') %}{{ prefix }}{{ m.role }}: {{ m.content if m.content is string else '' }}{% endmacro %}
{% for m in messages[1:] %}{{ render(m) }}
{% endfor %}
{{ render(messages[0], prefix='# ') }}
{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inside{% endcall %}
{% set captured %}  cap {{ messages|length }}  {% endset %}{{ captured|trim }}|{{ captured }}|
{% filter upper %}shout {{ messages[0].role }}{% endfilter %}
{% set ns2 = namespace(v='yes' if messages else 'no') %}{{ ns2.v }}|{{ render(messages[0], prefix='# ' if true else '') }}
{% with y = 5 %}{{ y * 2 }}{% endwith %}
{{ messages[1:]|length }}|{{ messages[:-1]|length }}|{{ messages[-1].content }}|{{ 'abcdef'[1:4] }}|{{ 'abc'[::-1] }}|{{ messages[::2]|map(attribute='role')|join(',') }}
{{ missing }}|{{ messages[0].missing }}|{{ messages[9] }}|{% if messages[0].missing %}T{% else %}F{% endif %}|{{ missing|length }}|{% for x in missing %}x{% endfor %}|{{ missing is sequence }}
{{ '\\x41\\u00e9\\t\\'' }}|{{ "a\\nb" }}|{{ dict(a=1, b='x') }}|{{ {'a': 1}['a'] }}|{{ messages[0]['role'] }}|{{ range(3)|list }}|{{ range(1, 10, 3)|list }}
"""

RAISE = """{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('Tool messages are not supported, got: ' + m.content) }}{% endif %}{% endfor %}never"""

GENERATION = """{% for m in messages %}
{% if m.role == 'assistant' %}
  {%- generation %}
{{ m.role }}: gen
  {%- endgeneration -%}
{% else %}
{{ m.role }}
{% endif %}
{% endfor %}"""

SHADOWING = """{% for k, v in messages[0].schema.items() %}{{ k }}:{{ v }};{% endfor %}
{{ messages[0].schema.keys()|list }}|{{ messages[0].schema.values()|list|length }}|{{ messages[0].schema.get('items') }}|{{ messages[0].schema['items'] }}
{{ messages[0].schema.items()|list }}|{{ 'items' in messages[0].schema }}|{{ messages[0].schema|tojson }}|{{ messages[0].schema|length }}
"""

MORE_FILTERS = """{{ messages|selectattr('role', 'in', ['user', 'tool'])|list|length }}
{{ ['a', 1, none]|select('string')|list }}
{{ [0, 1, none, '']|reject('none')|list }}
{{ ['a', 'b']|map('upper')|list }}
{{ [{'n': 1}, {'n': 2}]|sum(attribute='n') }}
{{ [{'n': 1}, {'n': 3}]|max(attribute='n') }}
{{ ['a', 'A', 'b']|unique|list }}
{{ 'abc'|first }}{{ 'abc'|last }}
{{ [1, 2, 3]|join }}
{{ 'a b  c'|wordcount }}
{{ messages|groupby('role')|map(attribute='grouper')|list }}
{{ '%s-%d'|format('a', 3) }}
{{ 'hello world'|truncate(9) }}
{{ 'x'|center(5) }}
{{ {'a': 1}|pprint }}
{{ 4 is divisibleby 2 }}{{ 3 is even }}{{ 3 is odd }}{{ 'a' is in 'abc' }}{{ 'ABC' is upper }}{{ 'abc' is lower }}{{ none is sameas none }}{{ 2 is eq 2 }}
{{ 'x'.center(5, '*') }}|{{ 'x'.ljust(3) }}.|{{ 'x'.rjust(3) }}
{{ 2**100 }}|{{ 2**64 + 1 }}|{{ 10 / 3 }}|{{ 1 + 1.5 }}|{{ 1e100 }}|{{ -0.0 }}
{{ 'abc'[-1] }}|{{ [1, 2, 3][1:] }}|{{ {1: 'a', 2.5: none} }}|{{ 'a' < 'b' }}|{{ (1, 2) == [1, 2] }}
{% set a, b = 1, 2 %}{{ a }}{{ b }}
{% for x in [1, 1, 2] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}
{% for x in [[1]] %}{% for y in x %}{{ loop.depth }}{% endfor %}{% endfor %}
{% macro c() %}{{ caller(5) }}{% endmacro %}{% call(n) c() %}n={{ n }}{% endcall %}
 x  {{ 'expr tag not lstripped' }}
  {% if true +%}
trim_blocks disabled by +%}
  {% endif %}
done
{{ messages[0].content|int }}|{{ '12abc'|int }}|{{ '3.7'|int }}|{{ 3.7|int }}|{{ 'x'|float }}
{{ 'a' if 'b' }}{{ none|default }}|{{ messages|batch(2)|list|length }}|{{ messages|slice(2)|list|length }}
{{ 'Hello World'|replace('o', '0', 1) }}|{{ 'a.b.c'.split('.', 1) }}|{{ 'a  b'.split(' ') }}
{{ ' x '|trim|length }}|{{ '\\u00a0x\\u00a0'|trim|length }}|{{ '\\x1cx'.strip()|length }}
{{ messages|map(attribute='name', default='nobody')|list }}
{{ messages|selectattr('name')|list|length }}|{{ messages|selectattr('name', 'none')|list|length }}
{{ messages[1].content.split('\\n')|map('trim')|join(',') }}
{{ messages|length is divisibleby(5) }}
{{ "{'a': 1}" }}|{{ {'a': "it's"} }}|{{ ["a\\nb"] }}|{{ ['\\\\'] }}
{{ [1.5, 2.0, 1e-5, 1e16, 123456789012345678] }}
{{ messages|tojson(indent=None) }}
{{ messages[0]|items|list }}
{% for k, v in messages[0]|dictsort(reverse=true) %}{{ k }}{% endfor %}
{{ 'é'|upper }}{{ 'ß'|upper }}{{ 'İ'|lower|length }}
{{ 'abc' ~ 1.0 }}|{{ 'abc' ~ 0.1 }}|{{ 1.0 ~ '' }}|{{ 1.5 ~ '' }}
{{ ['b', 'a', 'C']|sort(case_sensitive=true) }}|{{ messages|sort(attribute='role')|map(attribute='role')|join(',') }}
{{ messages|first|length }}|{{ none is not none }}|{{ not none }}
{% if messages|length > 3 and messages[-1].role == 'user' or false %}ok{% endif %}
{{ messages[0].content[2:5] }}|{{ messages[1:3]|length }}|{{ messages[::-1][0].role }}
{{ 'abc'.startswith('') }}|{{ ''.split(',') }}|{{ ''.split() }}|{{ 'a,b'.split(',', -1) }}

"""

SYNTHETIC = [
    ("ws_blocks", WS_BLOCKS, MSGS[:2], None),
    ("ws_marks", WS_MARKS, MSGS, None),
    ("ws_trailing_newlines", WS_TRAILING, MSGS, None),
    ("ws_crlf", WS_CRLF, MSGS, None),
    ("printing", PRINTING, MSGS, None),
    ("tojson", TOJSON, MSGS, None),
    ("methods", METHODS, MSGS, None),
    ("filters", FILTERS, MSGS, None),
    ("tests", TESTS, MSGS, None),
    ("more_filters", MORE_FILTERS, MSGS, None),
    ("loops", LOOPS, MSGS, None),
    ("macros_and_blocks", MACROS_AND_BLOCKS, MSGS, None),
    (
        "dict_methods_shadowed_by_keys",
        SHADOWING,
        [{"role": "user", "content": "x", "schema": {"type": "array", "items": {"type": "string"}, "keys": 1, "get": "g"}}],
        None,
    ),
    ("raise_exception", RAISE, MSGS, None),
    ("generation_tag", GENERATION, MSGS, None),
    ("extra_kwargs", "{{ enable_thinking }}|{{ custom.nested[0] }}|{{ bos_token }}|{{ tools }}|{{ documents }}", MSGS, {"enable_thinking": False, "custom": {"nested": ["é"]}, "bos_token": "<override>"}),
]
