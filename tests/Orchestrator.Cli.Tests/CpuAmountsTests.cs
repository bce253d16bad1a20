// The one CPU amount parser, shared by the CLI's options and the API's apply files (Orchestrator.Contracts).
using Orchestrator.Contracts;

namespace Orchestrator.Cli.Tests;

public sealed class CpuAmountsTests
{
    [Theory]
    [InlineData("500m", 500)]
    [InlineData("1500m", 1500)]
    [InlineData("0m", 0)]
    [InlineData("1.5", 1500)]
    [InlineData("0.25", 250)]
    [InlineData("2", 2000)]
    [InlineData("0.001", 1)]
    [InlineData(".5", 500)]
    [InlineData("100000", 100_000_000)]
    public void Millicores_or_cpus_are_read_as_millicores(string text, int millicores)
    {
        Assert.True(CpuAmounts.TryParseMillicores(text, out var parsed));
        Assert.Equal(millicores, parsed);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("m")]
    [InlineData("lots")]
    [InlineData("-1")]
    [InlineData("-500m")]
    [InlineData("+1")]
    [InlineData("1e3")]
    [InlineData("1,5")]
    [InlineData(" 1")]
    [InlineData("0.0005")] // finer than a millicore
    [InlineData("1.5m")]
    [InlineData("100000.001")] // over 100,000 CPUs
    [InlineData("99999999999m")] // over int
    [InlineData("12345678901234567")] // over 16 characters
    public void Anything_else_is_refused(string? text)
    {
        Assert.False(CpuAmounts.TryParseMillicores(text, out _));
    }

    [Theory]
    [InlineData(1500, "1.5 CPU")]
    [InlineData(250, "0.25 CPU")]
    [InlineData(2000, "2 CPU")]
    [InlineData(1, "0.001 CPU")]
    public void Millicores_are_shown_as_cpus(long millicores, string shown)
    {
        Assert.Equal(shown, CpuAmounts.Format(millicores));
    }
}
