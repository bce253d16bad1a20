using Orchestrator.Simulation.Traces;

namespace Orchestrator.Simulation.Tests;

public class TraceReaderTests
{
    private static readonly IReadOnlyDictionary<string, (int, long)> Flavours =
        new Dictionary<string, (int, long)> { ["a"] = (1, 768), ["d"] = (16, 114688) };

    private static readonly IReadOnlyList<long> Bins = [0, 300, 600, 3600];

    private static Trace Tbpp(string text) => TbppTraceReader.Read(new StringReader(text), "t.txt");

    private static Trace V1(string arrivals, string lifetimes) =>
        AzureV1TraceReader.Read(new StringReader(arrivals), "v1.x.txt", new StringReader(lifetimes), "v1.x.c1.txt", Flavours, Bins);

    [Fact]
    public void A_tbpp_instance_is_read_in_arrival_order_with_its_capacity_and_window()
    {
        var trace = Tbpp("3\t100\t0\t0\n0\t5\t9\t33\n1\t0\t7\t66\n2\t5\t6\t25\n");
        Assert.Equal(100, trace.HostCpus);
        Assert.Equal([1, 0, 2], trace.Vms.Select(v => v.Id));
        Assert.Equal((0L, 9L), (trace.Start, trace.End));
        Assert.Equal(new TraceVm(0, 5, 9, 33, 0), trace.Vms[1]);
    }

    [Theory]
    [InlineData("2\t100\t0\t0\n0\t0\t5\t33\n1\t0\t5\n", 3, "four integers")]
    [InlineData("2\t100\t0\t0\n0\t0\t5\t33\n1\t7\t5\t33\n", 3, "must be after start")]
    [InlineData("1\t100\t0\t0\n0\t0\t5\t101\n", 2, "size 101")]
    [InlineData("2\t100\t0\t0\n0\t0\t5\t33\n0\t1\t5\t33\n", 3, "appears twice")]
    [InlineData("3\t100\t0\t0\n0\t0\t5\t33\n1\t1\t5\t33\n", 3, "announces 3 VMs")]
    [InlineData("x\t100\t0\t0\n", 1, "header")]
    [InlineData("1\t100\t0\t0\n0\t0\tlater\t33\n", 2, "four integers")]
    public void A_malformed_tbpp_line_is_refused_with_the_file_and_line(string text, int line, string says)
    {
        var e = Assert.Throws<TraceFormatException>(() => Tbpp(text));
        Assert.Equal(("t.txt", line), (e.File, e.Line));
        Assert.StartsWith($"t.txt:{line}: ", e.Message);
        Assert.Contains(says, e.Message);
    }

    [Fact]
    public void Azure_v1_arrivals_get_their_flavour_and_the_middle_of_their_lifetime_bin()
    {
        var trace = V1("600 a,|,d,a,|\n900 a,|\n", "600 U0,|,U2,C1,|\n900 U3,|\n");
        Assert.Equal(4, trace.Vms.Count);
        Assert.Equal(new TraceVm(0, 600, 750, 1, 768), trace.Vms[0]);          // bin 0: [0, 300) → 150 s
        Assert.Equal(new TraceVm(1, 600, 600 + 2100, 16, 114688), trace.Vms[1]); // bin 2: [600, 3600) → 2100 s
        Assert.Null(trace.Vms[2].Departure);                                     // still running at the cut
        Assert.Equal(900 + 3600, trace.Vms[3].Departure);                        // the last bin: its lower edge
        Assert.Equal((600L, 1200L), (trace.Start, trace.End));
    }

    [Theory]
    [InlineData("600 a,|\n900 z,|\n", "600 U0,|\n900 U0,|\n", "v1.x.txt", 2, "unknown flavour 'z'")]
    [InlineData("600 a,|\n900 a,a,|\n", "600 U0,|\n900 U0,|\n", "v1.x.c1.txt", 2, "does not match")]
    [InlineData("600 a,|\n", "600 X0,|\n", "v1.x.c1.txt", 1, "U<bin> or C<bin>")]
    [InlineData("600 a,|\n", "600 U9,|\n", "v1.x.c1.txt", 1, "U<bin> or C<bin>")]
    [InlineData("600 a,|\nsoon a,|\n", "600 U0,|\nsoon U0,|\n", "v1.x.txt", 2, "<seconds> tokens")]
    [InlineData("600 a,|\n900 a,|\n", "600 U0,|\n", "v1.x.c1.txt", 2, "missing")]
    public void A_malformed_azure_v1_line_is_refused_with_the_file_and_line(string arrivals, string lifetimes, string file, int line, string says)
    {
        var e = Assert.Throws<TraceFormatException>(() => V1(arrivals, lifetimes));
        Assert.Equal((file, line), (e.File, e.Line));
        Assert.Contains(says, e.Message);
    }

    [Fact]
    public void The_shared_azure_v1_dev_split_reads_whole_with_its_flavour_map()
    {
        var path = SharedTraces.Path("azure2017-v1/v1.dev.txt");
        if (path is null)
        {
            return; // ../shared/traces is not beside this checkout
        }

        var trace = TraceReader.Read(path);
        Assert.Equal(259_159, trace.Vms.Count);
        Assert.All(trace.Vms, v => Assert.True(v.Vcpus is >= 1 and <= 16 && v.Departure is null || v.Departure > v.Arrival));
    }
}

internal static class SharedTraces
{
    /// <summary>A file under ../shared/traces, looked for upward from the test binaries; null where absent.</summary>
    public static string? Path(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "traces", relative);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
