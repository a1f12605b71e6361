"""Character tables of 3GPP TS 23.038 (§6.2.1, §6.2.1.1 and Annex A), as data.

Each table is written like the specification prints it: 16 rows (low nibble
0x0-0xF) by 8 columns (high nibble 0x0-0x7), so a code is ``column * 16 + row``.
Tokens: one literal character; four hex digits for a code point; ``SP`` space;
``LF``/``CR``; ``FF`` form feed (page break); ``ESC`` the escape to the
extension table; ``CR2`` the reserved second carriage return; ``--`` unassigned.

Transcribed from TS 23.038 and checked against the spec's row/column layout
(digits of each Indic script are consecutive, which the tests verify).
"""

from __future__ import annotations

_SPECIAL = {"SP": " ", "LF": "\n", "CR": "\r", "FF": "\f", "ESC": "\x1b", "CR2": "\r"}


def _grid(text: str) -> tuple[str | None, ...]:
    rows = [line.split() for line in text.strip().splitlines()]
    if len(rows) != 16 or any(len(r) != 8 for r in rows):  # pragma: no cover - table typo guard
        raise AssertionError(f"bad table grid: {[len(r) for r in rows]}")
    out: list[str | None] = [None] * 128
    for row_index, row in enumerate(rows):
        for col_index, token in enumerate(row):
            code = col_index * 16 + row_index
            if token == "--":
                ch: str | None = None
            elif token in _SPECIAL:
                ch = _SPECIAL[token]
            elif len(token) == 4 and all(c in "0123456789ABCDEFabcdef" for c in token):
                ch = chr(int(token, 16))
            elif len(token) == 1:
                ch = token
            else:  # pragma: no cover - table typo guard
                raise AssertionError(f"bad token {token!r}")
            out[code] = ch
    return tuple(out)


# --- §6.2.1 default alphabet and §6.2.1.1 extension ---------------------------

DEFAULT_LOCKING = _grid("""
@  Δ  SP 0 ¡ P ¿ p
£  _  !  1 A Q a q
$  Φ  "  2 B R b r
¥  Γ  #  3 C S c s
è  Λ  ¤  4 D T d t
é  Ω  %  5 E U e u
ù  Π  &  6 F V f v
ì  Ψ  '  7 G W g w
ò  Σ  (  8 H X h x
Ç  Θ  )  9 I Y i y
LF Ξ  *  : J Z j z
Ø  ESC + ; K Ä k ä
ø  Æ  ,  < L Ö l ö
CR æ  -  = M Ñ m ñ
Å  ß  .  > N Ü n ü
å  É  /  ? O § o à
""")

DEFAULT_SINGLE = _grid("""
--  --  -- -- | -- -- --
--  --  -- -- -- -- -- --
--  --  -- -- -- -- -- --
--  --  -- -- -- -- -- --
--  ^   -- -- -- -- -- --
--  --  -- -- -- -- € --
--  --  -- -- -- -- -- --
--  --  -- -- -- -- -- --
--  --  {  -- -- -- -- --
--  --  }  -- -- -- -- --
FF  --  -- -- -- -- -- --
--  ESC -- -- -- -- -- --
--  --  -- [  -- -- -- --
CR2 --  -- ~  -- -- -- --
--  --  -- ]  -- -- -- --
--  --  \\ -- -- -- -- --
""".replace("\\\\", "\\"))

# --- Annex A.3: locking shift tables -------------------------------------------

TURKISH_LOCKING = _grid("""
@  Δ  SP 0 İ P ç p
£  _  !  1 A Q a q
$  Φ  "  2 B R b r
¥  Γ  #  3 C S c s
€  Λ  ¤  4 D T d t
é  Ω  %  5 E U e u
ù  Π  &  6 F V f v
ı  Ψ  '  7 G W g w
ò  Σ  (  8 H X h x
Ç  Θ  )  9 I Y i y
LF Ξ  *  : J Z j z
Ğ  ESC + ; K Ä k ä
ğ  Ş  ,  < L Ö l ö
CR ş  -  = M Ñ m ñ
Å  ß  .  > N Ü n ü
å  É  /  ? O § o à
""")

PORTUGUESE_LOCKING = _grid("""
@  Δ  SP 0 Í P ~ p
£  _  !  1 A Q a q
$  ª  "  2 B R b r
¥  Ç  #  3 C S c s
ê  À  º  4 D T d t
é  ∞  %  5 E U e u
ú  ^  &  6 F V f v
í  \\ '  7 G W g w
ó  €  (  8 H X h x
ç  Ó  )  9 I Y i y
LF |  *  : J Z j z
Ô  ESC + ; K Ã k ã
ô  Â  ,  < L Õ l õ
CR â  -  = M Ú m `
Á  Ê  .  > N Ü n ü
á  É  /  ? O § o à
""".replace("\\\\", "\\"))

BENGALI_LOCKING = _grid("""
0981 0990 SP   0    09AC 09BE 09CE p
0982 --   !    1    09AD 09BF a    q
0983 --   099F 2    09AE 09C0 b    r
0985 0993 09A0 3    09AF 09C1 c    s
0986 0994 09A1 4    09B0 09C2 d    t
0987 0995 09A2 5    --   09C3 e    u
0988 0996 09A3 6    09B2 09C4 f    v
0989 0997 09A4 7    --   --   g    w
098A 0998 )    8    --   --   h    x
098B 0999 (    9    --   09C7 i    y
LF   099A 09A5 :    09B6 09C8 j    z
098C ESC  09A6 ;    09B7 --   k    09D7
--   099B ,    --   09B8 --   l    09DC
CR   099C 09A7 09AA 09B9 09CB m    09DD
--   099D .    09AB 09BC 09CC n    09F0
098F 099E 09A8 ?    09BD 09CD o    09F1
""")

GUJARATI_LOCKING = _grid("""
0A81 0A90 SP   0    0AAC 0ABE 0AD0 p
0A82 0A91 !    1    0AAD 0ABF a    q
0A83 --   0A9F 2    0AAE 0AC0 b    r
0A85 0A93 0AA0 3    0AAF 0AC1 c    s
0A86 0A94 0AA1 4    0AB0 0AC2 d    t
0A87 0A95 0AA2 5    --   0AC3 e    u
0A88 0A96 0AA3 6    0AB2 0AC4 f    v
0A89 0A97 0AA4 7    0AB3 0AC5 g    w
0A8A 0A98 )    8    --   --   h    x
0A8B 0A99 (    9    0AB5 0AC7 i    y
LF   0A9A 0AA5 :    0AB6 0AC8 j    z
0A8C ESC  0AA6 ;    0AB7 0AC9 k    0AE0
0A8D 0A9B ,    --   0AB8 --   l    0AE1
CR   0A9C 0AA7 0AAA 0AB9 0ACB m    0AE2
--   0A9D .    0AAB 0ABC 0ACC n    0AE3
0A8F 0A9E 0AA8 ?    0ABD 0ACD o    0AF1
""")

HINDI_LOCKING = _grid("""
0901 0910 SP   0    092C 093E 0950 p
0902 0911 !    1    092D 093F a    q
0903 0912 091F 2    092E 0940 b    r
0905 0913 0920 3    092F 0941 c    s
0906 0914 0921 4    0930 0942 d    t
0907 0915 0922 5    0931 0943 e    u
0908 0916 0923 6    0932 0944 f    v
0909 0917 0924 7    0933 0945 g    w
090A 0918 )    8    0934 0946 h    x
090B 0919 (    9    0935 0947 i    y
LF   091A 0925 :    0936 0948 j    z
090C ESC  0926 ;    0937 0949 k    0972
090D 091B ,    0929 0938 094A l    097B
CR   091C 0927 092A 0939 094B m    097C
090E 091D .    092B 093C 094C n    097E
090F 091E 0928 ?    093D 094D o    097F
""")

KANNADA_LOCKING = _grid("""
--   0C90 SP   0    0CAC 0CBE 0CD5 p
0C82 --   !    1    0CAD 0CBF a    q
0C83 0C92 0C9F 2    0CAE 0CC0 b    r
0C85 0C93 0CA0 3    0CAF 0CC1 c    s
0C86 0C94 0CA1 4    0CB0 0CC2 d    t
0C87 0C95 0CA2 5    0CB1 0CC3 e    u
0C88 0C96 0CA3 6    0CB2 0CC4 f    v
0C89 0C97 0CA4 7    0CB3 --   g    w
0C8A 0C98 )    8    --   0CC6 h    x
0C8B 0C99 (    9    0CB5 0CC7 i    y
LF   0C9A 0CA5 :    0CB6 0CC8 j    z
0C8C ESC  0CA6 ;    0CB7 --   k    0CD6
--   0C9B ,    --   0CB8 0CCA l    0CE0
CR   0C9C 0CA7 0CAA 0CB9 0CCB m    0CE1
0C8E 0C9D .    0CAB 0CBC 0CCC n    0CE2
0C8F 0C9E 0CA8 ?    0CBD 0CCD o    0CE3
""")

MALAYALAM_LOCKING = _grid("""
--   0D10 SP   0    0D2C 0D3E 0D57 p
0D02 --   !    1    0D2D 0D3F a    q
0D03 0D12 0D1F 2    0D2E 0D40 b    r
0D05 0D13 0D20 3    0D2F 0D41 c    s
0D06 0D14 0D21 4    0D30 0D42 d    t
0D07 0D15 0D22 5    0D31 0D43 e    u
0D08 0D16 0D23 6    0D32 0D44 f    v
0D09 0D17 0D24 7    0D33 --   g    w
0D0A 0D18 )    8    0D34 0D46 h    x
0D0B 0D19 (    9    0D35 0D47 i    y
LF   0D1A 0D25 :    0D36 0D48 j    z
0D0C ESC  0D26 ;    0D37 --   k    0D60
--   0D1B ,    --   0D38 0D4A l    0D61
CR   0D1C 0D27 0D2A 0D39 0D4B m    0D62
0D0E 0D1D .    0D2B --   0D4C n    0D63
0D0F 0D1E 0D28 ?    0D3D 0D4D o    0D79
""")

ORIYA_LOCKING = _grid("""
0B01 0B10 SP   0    0B2C 0B3E 0B56 p
0B02 --   !    1    0B2D 0B3F a    q
0B03 --   0B1F 2    0B2E 0B40 b    r
0B05 0B13 0B20 3    0B2F 0B41 c    s
0B06 0B14 0B21 4    0B30 0B42 d    t
0B07 0B15 0B22 5    --   0B43 e    u
0B08 0B16 0B23 6    0B32 0B44 f    v
0B09 0B17 0B24 7    0B33 --   g    w
0B0A 0B18 )    8    --   --   h    x
0B0B 0B19 (    9    0B35 0B47 i    y
LF   0B1A 0B25 :    0B36 0B48 j    z
0B0C ESC  0B26 ;    0B37 --   k    0B57
--   0B1B ,    --   0B38 --   l    0B60
CR   0B1C 0B27 0B2A 0B39 0B4B m    0B61
--   0B1D .    0B2B 0B3C 0B4C n    0B62
0B0F 0B1E 0B28 ?    0B3D 0B4D o    0B63
""")

PUNJABI_LOCKING = _grid("""
0A01 0A10 SP   0    0A2C 0A3E 0A51 p
0A02 --   !    1    0A2D 0A3F a    q
0A03 --   0A1F 2    0A2E 0A40 b    r
0A05 0A13 0A20 3    0A2F 0A41 c    s
0A06 0A14 0A21 4    0A30 0A42 d    t
0A07 0A15 0A22 5    --   --   e    u
0A08 0A16 0A23 6    0A32 --   f    v
0A09 0A17 0A24 7    0A33 --   g    w
0A0A 0A18 )    8    --   --   h    x
--   0A19 (    9    0A35 0A47 i    y
LF   0A1A 0A25 :    0A36 0A48 j    z
--   ESC  0A26 ;    --   --   k    0A70
--   0A1B ,    --   0A38 --   l    0A71
CR   0A1C 0A27 0A2A 0A39 0A4B m    0A72
--   0A1D .    0A2B 0A3C 0A4C n    0A73
0A0F 0A1E 0A28 ?    --   0A4D o    0A74
""")

TAMIL_LOCKING = _grid("""
--   0B90 SP   0    --   0BBE 0BD0 p
0B82 0B91 !    1    --   0BBF a    q
0B83 0B92 0B9F 2    0BAE 0BC0 b    r
0B85 0B93 --   3    0BAF 0BC1 c    s
0B86 0B94 --   4    0BB0 0BC2 d    t
0B87 0B95 --   5    0BB1 --   e    u
0B88 --   0BA3 6    0BB2 --   f    v
0B89 --   0BA4 7    0BB3 --   g    w
0B8A --   )    8    0BB4 0BC6 h    x
--   0B99 (    9    0BB5 0BC7 i    y
LF   0B9A --   :    0BB6 0BC8 j    z
--   ESC  --   ;    0BB7 --   k    0BD7
--   --   ,    0BA9 0BB8 0BCA l    0BF0
CR   0B9C --   0BAA 0BB9 0BCB m    0BF1
0B8E --   .    --   --   0BCC n    0BF2
0B8F 0B9E 0BA8 ?    --   0BCD o    0BF9
""")

TELUGU_LOCKING = _grid("""
0C01 0C10 SP   0    0C2C 0C3E 0C55 p
0C02 0C11 !    1    0C2D 0C3F a    q
0C03 0C12 0C1F 2    0C2E 0C40 b    r
0C05 0C13 0C20 3    0C2F 0C41 c    s
0C06 0C14 0C21 4    0C30 0C42 d    t
0C07 0C15 0C22 5    0C31 0C43 e    u
0C08 0C16 0C23 6    0C32 0C44 f    v
0C09 0C17 0C24 7    0C33 --   g    w
0C0A 0C18 )    8    --   0C46 h    x
0C0B 0C19 (    9    0C35 0C47 i    y
LF   0C1A 0C25 :    0C36 0C48 j    z
0C0C ESC  0C26 ;    0C37 --   k    0C56
--   0C1B ,    --   0C38 0C4A l    0C60
CR   0C1C 0C27 0C2A 0C39 0C4B m    0C61
0C0E 0C1D .    0C2B --   0C4C n    0C62
0C0F 0C1E 0C28 ?    0C3D 0C4D o    0C63
""")

URDU_LOCKING = _grid("""
0627 062B SP   0    0635 06BA 0654 p
0622 062C !    1    0636 06BB a    q
0628 0681 068F 2    0637 06BC b    r
067B 0684 068D 3    0638 0648 c    s
0680 0683 0630 4    0639 06C4 d    t
067E 0685 0631 5    0641 06D5 e    u
06A6 0686 0691 6    0642 06C1 f    v
062A 0687 0693 7    06A9 06BE g    w
06C2 062D )    8    06AA 0621 h    x
067F 062E (    9    06AB 06CC i    y
LF   062F 0699 :    06AF 06D0 j    z
0679 ESC  0632 ;    06B3 06D2 k    0655
067D 068C ,    069A 06B1 064D l    0651
CR   0688 0696 0633 0644 0650 m    0653
067A 0689 .    0634 0645 064F n    0656
067C 068A 0698 ?    0646 0657 o    0670
""")

# --- Annex A.2: single shift tables ----------------------------------------------

TURKISH_SINGLE = _grid("""
--  --  -- -- |  -- -- --
--  --  -- -- -- -- -- --
--  --  -- -- -- -- -- --
--  --  -- -- -- Ş  ç  ş
--  ^   -- -- -- -- -- --
--  --  -- -- -- -- €  --
--  --  -- -- -- -- -- --
--  --  -- -- Ğ  -- ğ  --
--  --  {  -- -- -- -- --
--  --  }  -- İ  -- ı  --
FF  --  -- -- -- -- -- --
--  ESC -- -- -- -- -- --
--  --  -- [  -- -- -- --
CR2 --  -- ~  -- -- -- --
--  --  -- ]  -- -- -- --
--  --  \\ -- -- -- -- --
""".replace("\\\\", "\\"))

SPANISH_SINGLE = _grid("""
--  --  -- -- |  -- -- --
--  --  -- -- Á  -- á  --
--  --  -- -- -- -- -- --
--  --  -- -- -- -- -- --
--  ^   -- -- -- -- -- --
--  --  -- -- -- Ú  €  ú
--  --  -- -- -- -- -- --
--  --  -- -- -- -- -- --
--  --  {  -- -- -- -- --
ç   --  }  -- Í  -- í  --
FF  --  -- -- -- -- -- --
--  ESC -- -- -- -- -- --
--  --  -- [  -- -- -- --
CR2 --  -- ~  -- -- -- --
--  --  -- ]  -- -- -- --
--  --  \\ -- Ó  -- ó  --
""".replace("\\\\", "\\"))

PORTUGUESE_SINGLE = _grid("""
--  --  -- -- |  -- -- --
--  --  -- -- À  -- Â  --
--  Φ   -- -- -- -- -- --
--  Γ   -- -- -- -- -- --
--  ^   -- -- -- -- -- --
--  Ω   -- -- -- Ú  €  ú
--  Π   -- -- -- -- -- --
--  Ψ   -- -- -- -- -- --
--  Σ   {  -- -- -- -- --
ç   Θ   }  -- Í  -- í  --
FF  --  -- -- -- -- -- --
Ô   ESC -- -- -- Ã  -- ã
ô   --  -- [  -- Õ  -- õ
CR2 --  -- ~  -- -- -- --
Á   --  -- ]  -- -- -- --
á   Ê   \\ -- Ó  -- ó  â
""".replace("\\\\", "\\"))


def _indic_single(col1_tail: str, col2: str, col3: str) -> tuple[str | None, ...]:
    """The Indic single shift tables share columns 0, 4-7 and the top of column 1.

    ``col1_tail`` gives rows 9-15 of column 1 except row 11 (ESC): 6 tokens for
    rows 9, 10, 12, 13, 14, 15. ``col2``/``col3``: 16 tokens each.
    """
    col0 = "@ £ $ ¥ ¿ \" ¤ % & ' FF * + CR2 - /".split()
    tail = col1_tail.split()
    col1 = ["<", "=", ">", "¡", "^", "¡", "_", "#", "*", tail[0], tail[1], "ESC", *tail[2:]]
    c2, c3 = col2.split(), col3.split()
    col4 = ["|", *"ABCDEFGHIJKLMNO"]
    col5 = [*"PQRSTUVWXYZ", "--", "--", "--", "--", "--"]
    col6 = ["--"] * 5 + ["€"] + ["--"] * 10
    col7 = ["--"] * 16
    cols = [col0, col1, c2, c3, col4, col5, col6, col7]
    if any(len(c) != 16 for c in cols):  # pragma: no cover - table typo guard
        raise AssertionError("bad Indic column")
    rows = "\n".join(" ".join(c[r] for c in cols) for r in range(16))
    return _grid(rows)


BENGALI_SINGLE = _indic_single(
    "09E6 09E7 09E8 09E9 09EA 09EB",
    "09EC 09ED 09EE 09EF 09DF 09E0 09E1 09E2 { } 09E3 09F2 09F3 09F4 09F5 \\",
    "09F6 09F7 09F8 09F9 09FA -- -- -- -- -- -- -- [ ~ ] --",
)
GUJARATI_SINGLE = _indic_single(
    "0964 0965 0AE6 0AE7 0AE8 0AE9",
    "0AEA 0AEB 0AEC 0AED 0AEE 0AEF -- -- { } -- -- -- -- -- \\",
    "-- -- -- -- -- -- -- -- -- -- -- -- [ ~ ] --",
)
HINDI_SINGLE = _indic_single(
    "0964 0965 0966 0967 0968 0969",
    "096A 096B 096C 096D 096E 096F 0951 0952 { } 0953 0954 0958 0959 095A \\",
    "095B 095C 095D 095E 095F 0960 0961 0962 0963 0970 0971 -- [ ~ ] --",
)
KANNADA_SINGLE = _indic_single(
    "0964 0965 0CE6 0CE7 0CE8 0CE9",
    "0CEA 0CEB 0CEC 0CED 0CEE 0CEF 0CDE 0CF1 { } 0CF2 -- -- -- -- \\",
    "-- -- -- -- -- -- -- -- -- -- -- -- [ ~ ] --",
)
MALAYALAM_SINGLE = _indic_single(
    "0964 0965 0D66 0D67 0D68 0D69",
    "0D6A 0D6B 0D6C 0D6D 0D6E 0D6F 0D70 0D71 { } 0D72 0D73 0D74 0D75 0D7A \\",
    "0D7B 0D7C 0D7D 0D7E 0D7F -- -- -- -- -- -- -- [ ~ ] --",
)
ORIYA_SINGLE = _indic_single(
    "0964 0965 0B66 0B67 0B68 0B69",
    "0B6A 0B6B 0B6C 0B6D 0B6E 0B6F 0B5C 0B5D { } 0B5F 0B70 0B71 -- -- \\",
    "-- -- -- -- -- -- -- -- -- -- -- -- [ ~ ] --",
)
PUNJABI_SINGLE = _indic_single(
    "0964 0965 0A66 0A67 0A68 0A69",
    "0A6A 0A6B 0A6C 0A6D 0A6E 0A6F 0A59 0A5A { } 0A5B 0A5C 0A5E 0A75 -- \\",
    "-- -- -- -- -- -- -- -- -- -- -- -- [ ~ ] --",
)
TAMIL_SINGLE = _indic_single(
    "0964 0965 0BE6 0BE7 0BE8 0BE9",
    "0BEA 0BEB 0BEC 0BED 0BEE 0BEF 0BF3 0BF4 { } 0BF5 0BF6 0BF7 0BF8 0BFA \\",
    "-- -- -- -- -- -- -- -- -- -- -- -- [ ~ ] --",
)
TELUGU_SINGLE = _indic_single(
    "-- -- 0C66 0C67 0C68 0C69",
    "0C6A 0C6B 0C6C 0C6D 0C6E 0C6F 0C58 0C59 { } 0C78 0C79 0C7A 0C7B 0C7C \\",
    "0C7D 0C7E 0C7F -- -- -- -- -- -- -- -- -- [ ~ ] --",
)
URDU_SINGLE = _indic_single(
    "0600 0601 06F0 06F1 06F2 06F3",
    "06F4 06F5 06F6 06F7 06F8 06F9 060C 060D { } 060E 060F 0610 0611 0612 \\",
    "0613 0614 061B 061F 0640 0652 0658 066B 066C 0672 0673 06CD [ ~ ] 06D4",
)

# National language identifiers (TS 23.038 §6.2.1.2.4) -> (locking, single).
# Spanish has no locking shift table.
NATIONAL_TABLES: dict[int, tuple[tuple[str | None, ...] | None, tuple[str | None, ...]]] = {
    0: (DEFAULT_LOCKING, DEFAULT_SINGLE),
    1: (TURKISH_LOCKING, TURKISH_SINGLE),
    2: (None, SPANISH_SINGLE),
    3: (PORTUGUESE_LOCKING, PORTUGUESE_SINGLE),
    4: (BENGALI_LOCKING, BENGALI_SINGLE),
    5: (GUJARATI_LOCKING, GUJARATI_SINGLE),
    6: (HINDI_LOCKING, HINDI_SINGLE),
    7: (KANNADA_LOCKING, KANNADA_SINGLE),
    8: (MALAYALAM_LOCKING, MALAYALAM_SINGLE),
    9: (ORIYA_LOCKING, ORIYA_SINGLE),
    10: (PUNJABI_LOCKING, PUNJABI_SINGLE),
    11: (TAMIL_LOCKING, TAMIL_SINGLE),
    12: (TELUGU_LOCKING, TELUGU_SINGLE),
    13: (URDU_LOCKING, URDU_SINGLE),
}

LANGUAGE_NAMES = {
    0: "default", 1: "turkish", 2: "spanish", 3: "portuguese", 4: "bengali", 5: "gujarati",
    6: "hindi", 7: "kannada", 8: "malayalam", 9: "oriya", 10: "punjabi", 11: "tamil",
    12: "telugu", 13: "urdu",
}
