// Hadoop MapReduce WordCount for bench/compare, run by Hadoop's own LocalJobRunner.
// Tokenization is byte-exact and identical to mrjob's: tokens are split on the bytes
// space, tab, \n, \r and form feed (0x0c) only; no decoding, case-sensitive. TextInputFormat
// already ends lines at \n, \r and \r\n (all delimiters), and Text holds the raw bytes.
// Usage: java -cp CLASSES:JARS WordCount IN OUT THREADS
import java.io.IOException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.io.LongWritable;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.mapreduce.Job;
import org.apache.hadoop.mapreduce.Mapper;
import org.apache.hadoop.mapreduce.Reducer;
import org.apache.hadoop.mapreduce.lib.input.FileInputFormat;
import org.apache.hadoop.mapreduce.lib.output.FileOutputFormat;

public class WordCount {
  static final boolean[] DELIM = new boolean[256];
  static {
    DELIM[' '] = true; DELIM['\t'] = true; DELIM['\n'] = true; DELIM['\r'] = true; DELIM[0x0c] = true;
  }

  public static class TokenMapper extends Mapper<LongWritable, Text, Text, LongWritable> {
    private final Text word = new Text();
    private final LongWritable one = new LongWritable(1);

    @Override
    protected void map(LongWritable key, Text value, Context ctx) throws IOException, InterruptedException {
      byte[] b = value.getBytes();
      int n = value.getLength();
      int i = 0;
      while (i < n) {
        while (i < n && DELIM[b[i] & 0xff]) i++;
        int start = i;
        while (i < n && !DELIM[b[i] & 0xff]) i++;
        if (i > start) {
          word.set(b, start, i - start);
          ctx.write(word, one);
        }
      }
    }
  }

  public static class SumReducer extends Reducer<Text, LongWritable, Text, LongWritable> {
    private final LongWritable out = new LongWritable();

    @Override
    protected void reduce(Text key, Iterable<LongWritable> values, Context ctx) throws IOException, InterruptedException {
      long sum = 0;
      for (LongWritable v : values) sum += v.get();
      out.set(sum);
      ctx.write(key, out);
    }
  }

  public static void main(String[] args) throws Exception {
    int threads = Integer.parseInt(args[2]);
    Configuration conf = new Configuration();
    conf.set("mapreduce.framework.name", "local");
    conf.set("fs.defaultFS", "file:///");
    conf.setInt("mapreduce.local.map.tasks.maximum", threads);
    conf.setInt("mapreduce.local.reduce.tasks.maximum", threads);
    conf.setInt("mapreduce.task.io.sort.mb", 100);
    Job job = Job.getInstance(conf, "wordcount");
    job.setJarByClass(WordCount.class);
    job.setMapperClass(TokenMapper.class);
    job.setCombinerClass(SumReducer.class);
    job.setReducerClass(SumReducer.class);
    job.setOutputKeyClass(Text.class);
    job.setOutputValueClass(LongWritable.class);
    job.setNumReduceTasks(threads);
    FileInputFormat.setInputDirRecursive(job, true);
    FileInputFormat.addInputPath(job, new Path(args[0]));
    FileOutputFormat.setOutputPath(job, new Path(args[1]));
    System.exit(job.waitForCompletion(false) ? 0 : 1);
  }
}
