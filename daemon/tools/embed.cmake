# Turns a text file into a C array, for a certificate the tool carries with it.
file(READ ${INPUT} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUTPUT} "/* Generated from ${NAME}; do not edit. */\nconst char ${SYMBOL}[] = { ${bytes} 0x00 };\n")
