namespace Orchestrator.Hypervisor.Tests;

public sealed class ProcStatTests
{
    [Fact]
    public void Cpu_time_is_parsed_after_the_last_parenthesis_of_the_command_name()
    {
        // A thread name may contain spaces and parentheses: "CPU 0/TCG) x" must not shift the fields.
        var line = "1234 (CPU 0/TCG) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 100 0 0";

        var cpu = ProcStat.ParseCpuTime(line);

        Assert.Equal(TimeSpan.FromSeconds(300.0 / ProcStat.ClockTicksPerSecond), cpu);
        Assert.Equal('S', ProcStat.ParseState(line));
    }

    [Fact]
    public void Cpu_time_of_a_thread_of_this_process_can_be_read()
    {
        var pid = Environment.ProcessId;
        var tid = int.Parse(Path.GetFileName(Directory.GetDirectories($"/proc/{pid}/task")[0]), System.Globalization.CultureInfo.InvariantCulture);

        Assert.NotNull(ProcStat.ReadThreadCpuTime(pid, tid));
        Assert.NotNull(ProcStat.ReadProcessCpuTime(pid));
    }

    [Fact]
    public void A_thread_that_does_not_exist_has_no_cpu_time()
    {
        Assert.Null(ProcStat.ReadThreadCpuTime(Environment.ProcessId, int.MaxValue));
    }

    [Fact]
    public void Resident_memory_grows_with_touched_memory_and_is_null_for_a_gone_process()
    {
        var before = ProcStat.ReadResidentBytes(Environment.ProcessId)!.Value;
        var block = new byte[64 << 20];
        Array.Fill(block, (byte)1); // touch every page
        var after = ProcStat.ReadResidentBytes(Environment.ProcessId)!.Value;
        GC.KeepAlive(block);
        Assert.True(after - before >= 48L << 20, $"RSS grew {(after - before) >> 20} MiB after touching 64 MiB");
        Assert.Null(ProcStat.ReadResidentBytes(int.MaxValue));
    }

    [Fact]
    public void The_resident_part_of_a_mapping_is_found_by_its_size()
    {
        string[] smaps =
        [
            "7f170fe00000-7f171fe00000 rw-p 00000000 00:00 0 ",
            "Size:             131072 kB",
            "KernelPageSize:        4 kB",
            "Rss:                 640 kB",
            "7f1720000000-7f175ffff000 rwxp 00000000 00:00 0 ",
            "Size:             262144 kB",
            "KernelPageSize:        4 kB",
            "Rss:              120832 kB",
            "Pss:              120832 kB",
        ];

        Assert.Equal(120832L * 1024, ProcStat.ParseMappingResidentBytes(smaps, 256L << 20));
        Assert.Equal(640L * 1024, ProcStat.ParseMappingResidentBytes(smaps, 128L << 20));
        Assert.Null(ProcStat.ParseMappingResidentBytes(smaps, 64L << 20));
    }
}
