"""Lines per input file, by the file name Hadoop exports to the mapper."""
import posixpath

from mrjob.compat import jobconf_from_env
from mrjob.job import MRJob


class MRLinesPerFile(MRJob):
    def mapper(self, _, line):
        path = jobconf_from_env('mapreduce.map.input.file')
        yield posixpath.basename(path), 1

    def reducer(self, name, counts):
        yield name, sum(counts)


if __name__ == '__main__':
    MRLinesPerFile.run()
