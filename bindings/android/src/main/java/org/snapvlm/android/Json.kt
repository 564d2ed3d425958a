package org.snapvlm.android

/**
 * The little JSON the binding needs, without org.json: [quote] for requests
 * and [parse] for libsnapvlm's results (objects become Map<String, Any?>,
 * arrays List<Any?>, numbers Double or Long).
 */
internal object Json {
    fun quote(s: String): String {
        val b = StringBuilder(s.length + 2).append('"')
        for (c in s) {
            when {
                c == '"' -> b.append("\\\"")
                c == '\\' -> b.append("\\\\")
                c == '\n' -> b.append("\\n")
                c == '\r' -> b.append("\\r")
                c == '\t' -> b.append("\\t")
                c < ' ' -> b.append(String.format("\\u%04x", c.toInt()))
                else -> b.append(c)
            }
        }
        return b.append('"').toString()
    }

    /** Renders a map of options (String, Number, Boolean values). */
    fun obj(fields: Map<String, Any>): String =
        fields.entries.joinToString(",", "{", "}") { (k, v) ->
            quote(k) + ":" + when (v) {
                is String -> quote(v)
                else -> v.toString()
            }
        }

    fun parse(text: String): Any? {
        val p = Parser(text)
        val v = p.value()
        p.ws()
        require(p.i == text.length) { "JSON: data after the value at ${p.i}" }
        return v
    }

    private class Parser(val s: String) {
        var i = 0

        fun ws() {
            while (i < s.length && s[i] <= ' ') i++
        }

        fun value(): Any? {
            ws()
            require(i < s.length) { "JSON: unexpected end" }
            return when (s[i]) {
                '{' -> {
                    i++
                    val m = LinkedHashMap<String, Any?>()
                    ws()
                    if (s[i] == '}') {
                        i++
                        return m
                    }
                    while (true) {
                        ws()
                        val k = string()
                        ws()
                        expect(':')
                        m[k] = value()
                        ws()
                        if (s[i++] == '}') return m
                        require(s[i - 1] == ',') { "JSON: want , or } at ${i - 1}" }
                    }
                    @Suppress("UNREACHABLE_CODE")
                    m
                }
                '[' -> {
                    i++
                    val l = ArrayList<Any?>()
                    ws()
                    if (s[i] == ']') {
                        i++
                        return l
                    }
                    while (true) {
                        l.add(value())
                        ws()
                        if (s[i++] == ']') return l
                        require(s[i - 1] == ',') { "JSON: want , or ] at ${i - 1}" }
                    }
                    @Suppress("UNREACHABLE_CODE")
                    l
                }
                '"' -> string()
                't' -> word("true", true)
                'f' -> word("false", false)
                'n' -> word("null", null)
                else -> number()
            }
        }

        fun expect(c: Char) {
            require(i < s.length && s[i] == c) { "JSON: want $c at $i" }
            i++
        }

        fun word(w: String, v: Any?): Any? {
            require(s.startsWith(w, i)) { "JSON: bad literal at $i" }
            i += w.length
            return v
        }

        fun number(): Any {
            val start = i
            while (i < s.length && (s[i] in "+-.eE" || s[i].isDigit())) i++
            val t = s.substring(start, i)
            require(t.isNotEmpty()) { "JSON: bad value at $start" }
            return t.toLongOrNull() ?: t.toDouble()
        }

        fun string(): String {
            expect('"')
            val b = StringBuilder()
            while (true) {
                require(i < s.length) { "JSON: unterminated string" }
                val c = s[i++]
                when (c) {
                    '"' -> return b.toString()
                    '\\' -> {
                        val e = s[i++]
                        when (e) {
                            'n' -> b.append('\n')
                            't' -> b.append('\t')
                            'r' -> b.append('\r')
                            'b' -> b.append('\b')
                            'f' -> b.append('\u000c')
                            'u' -> {
                                b.append(s.substring(i, i + 4).toInt(16).toChar())
                                i += 4
                            }
                            else -> b.append(e)
                        }
                    }
                    else -> b.append(c)
                }
            }
        }
    }
}

@Suppress("UNCHECKED_CAST")
internal fun Any?.obj(): Map<String, Any?> = this as Map<String, Any?>

@Suppress("UNCHECKED_CAST")
internal fun Any?.list(): List<Any?> = this as List<Any?>

internal fun Any?.long(): Long = (this as Number).toLong()

internal fun Any?.double(): Double = (this as Number).toDouble()
