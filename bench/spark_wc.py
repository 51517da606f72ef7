"""PySpark peers for bench/compare. Usage: spark_wc.py MODE MASTER IN OUT
MODE: rdd (classic RDD word count), df (DataFrame word count), sort (RDD terasort).

Tokenization is byte-exact, as in mrjob: split on space, tab, \\n, \\r, form feed only.
 * rdd: lines come from spark.read.text cast to binary (raw bytes; Hadoop's LineRecordReader
   ends lines at \\n, \\r, \\r\\n, all delimiters), then flatMap/map/reduceByKey with
   bytes.translate + split, as the Python rows; the counted lines are written through a
   binary DataFrame column (sc.textFile and saveAsTextFile both go through UTF-8, lossily).
 * df: spark.read.text keeps the raw line bytes in its UTF8String (not validated); cast to
   binary and decode as ISO-8859-1 (one char per byte), so translate/split/explode/groupBy
   see every byte; words are encoded back to ISO-8859-1 bytes and written as raw bytes.
Output: word<TAB>count lines in OUT/part-*."""
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

DELIMS = b" \t\n\r\x0c"
TO_SPACE = bytes.maketrans(b"\t\n\r\x0c", b"    ")


def main():
    mode, master, src, out = sys.argv[1:5]
    spark = (SparkSession.builder.master(master).appName(f"bench-{mode}")
             .config("spark.driver.memory", "4g")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", str(max(1, spark_cores(master))))
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    sc = spark.sparkContext
    sc._jsc.hadoopConfiguration().set("mapreduce.input.fileinputformat.input.dir.recursive", "true")
    if mode == "rdd":
        # sc.textFile(use_unicode=False) is not byte-exact: the JVM decodes each line as UTF-8
        # (invalid bytes become U+FFFD) before Python sees it. The DataFrame text reader keeps
        # the raw bytes, so it is the line source; the rest is the classic RDD word count.
        lines = (spark.read.option("recursiveFileLookup", "true").text(src)
                 .select(F.col("value").cast("binary")).rdd.map(lambda row: bytes(row[0])))
        (lines
         .flatMap(lambda line: [w for w in line.translate(TO_SPACE).split(b" ") if w])
         .map(lambda w: (w, 1))
         .reduceByKey(lambda a, b: a + b)
         .map(lambda kv: (kv[0] + b"\t" + str(kv[1]).encode(),))
         .toDF("value binary")  # saveAsTextFile would decode the bytes as UTF-8 (lossy)
         .select(F.col("value").cast("string")).write.text(out))
    elif mode == "df":
        line = F.decode(F.col("value").cast("binary"), "ISO-8859-1")
        words = (spark.read.option("recursiveFileLookup", "true").text(src)
                 .select(F.explode(F.split(F.translate(line, "\t\r\f", "   "), " ")).alias("w"))
                 .where(F.col("w") != "")
                 .groupBy("w").count())
        text = F.concat(F.encode("w", "ISO-8859-1"), F.lit("\t").cast("binary"),
                        F.col("count").cast("string").cast("binary")).cast("string")
        words.select(text.alias("value")).write.text(out)
    elif mode == "sort":
        import os
        n = spark_cores(master)

        def write_part(idx, it):
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, f"part-{idx:05d}"), "wb") as f:
                for _, rec in it:
                    f.write(rec)
            yield idx

        recs = sc.binaryRecords(src, 100).map(lambda r: (bytes(r[:10]), bytes(r)))
        recs.sortByKey(numPartitions=n).mapPartitionsWithIndex(write_part).count()
    spark.stop()


def spark_cores(master):
    import os
    inner = master[master.find("[") + 1:master.find("]")]
    return os.cpu_count() if inner == "*" else int(inner)


if __name__ == "__main__":
    main()
