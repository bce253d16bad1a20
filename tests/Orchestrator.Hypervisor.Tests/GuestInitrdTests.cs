using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Tests;

public sealed class GuestInitrdTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Newc_archive_unpacks_with_the_system_cpio()
    {
        var archive = Path.Combine(_dir.Path, "a.cpio");
        using (var output = File.Create(archive))
        {
            var writer = new CpioNewcWriter(output);
            writer.AddDirectory("etc");
            writer.AddDirectory("etc/orchestrator");
            writer.AddFile("etc/orchestrator/name", "web-1\n"u8);
            writer.AddFile("odd", [1, 2, 3]); // a length that needs padding
            writer.Finish();
        }

        var target = Directory.CreateDirectory(Path.Combine(_dir.Path, "x")).FullName;
        var cpio = new ProcessStartInfo("cpio", ["-i", "-d", "--quiet", "-F", archive])
        {
            WorkingDirectory = target,
            RedirectStandardError = true,
        };
        using (var process = Process.Start(cpio)!)
        {
            var stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"cpio -i failed: {stderr}");
        }

        Assert.Equal("web-1\n", File.ReadAllText(Path.Combine(target, "etc/orchestrator/name")));
        Assert.Equal([1, 2, 3], File.ReadAllBytes(Path.Combine(target, "odd")));
    }

    [Fact]
    public void Newc_entries_are_four_byte_aligned_and_end_with_a_trailer()
    {
        using var output = new MemoryStream();
        var writer = new CpioNewcWriter(output);
        writer.AddFile("a", "xyz"u8);
        writer.Finish();

        var entries = Newc.Parse(output.ToArray(), 0);

        Assert.Equal(["a", "TRAILER!!!"], entries.Select(e => e.Name));
        Assert.Equal("xyz", Encoding.ASCII.GetString(entries[0].Data));
        Assert.Equal(0, output.Length % 4);
    }

    [Fact]
    public void Per_vm_initrd_is_the_image_initrd_then_an_aligned_archive_naming_the_vm()
    {
        // An odd-sized gzip'd base, like a real one: the appended archive must still start 4-byte aligned.
        var baseInitrd = Path.Combine(_dir.Path, "base.img");
        using (var file = File.Create(baseInitrd))
        using (var gzip = new GZipStream(file, CompressionLevel.Fastest))
        {
            var inner = new CpioNewcWriter(gzip);
            inner.AddFile("init", "#!/bin/sh\n"u8);
            inner.Finish();
        }

        File.AppendAllText(baseInitrd, "x"); // force a size that is not a multiple of 4
        var baseBytes = File.ReadAllBytes(baseInitrd);
        Assert.NotEqual(0, baseBytes.Length % 4);

        var perVm = Path.Combine(_dir.Path, "vm.img");
        GuestInitrd.Write(baseInitrd, perVm, "db primary");
        var combined = File.ReadAllBytes(perVm);

        Assert.Equal(baseBytes, combined[..baseBytes.Length]);
        var appendedAt = (baseBytes.Length + 3) / 4 * 4;
        Assert.All(combined[baseBytes.Length..appendedAt], b => Assert.Equal(0, b));
        var entries = Newc.Parse(combined, appendedAt);
        var name = Assert.Single(entries, e => e.Name == GuestInitrd.NamePath);
        Assert.Equal("db primary\n", Encoding.UTF8.GetString(name.Data));
    }

    /// <summary>A minimal newc reader, to check the writer independently of it.</summary>
    private static class Newc
    {
        public static List<(string Name, byte[] Data)> Parse(byte[] bytes, int offset)
        {
            var entries = new List<(string, byte[])>();
            while (true)
            {
                Assert.Equal(0, offset % 4);
                Assert.Equal("070701", Encoding.ASCII.GetString(bytes, offset, 6));
                int Field(int index) => Convert.ToInt32(Encoding.ASCII.GetString(bytes, offset + 6 + (index * 8), 8), 16);
                var fileSize = Field(6);
                var nameSize = Field(11);
                var name = Encoding.UTF8.GetString(bytes, offset + 110, nameSize - 1);
                var dataAt = Align(offset + 110 + nameSize);
                entries.Add((name, bytes[dataAt..(dataAt + fileSize)]));
                offset = Align(dataAt + fileSize);
                if (name == "TRAILER!!!")
                {
                    return entries;
                }
            }
        }

        private static int Align(int value) => (value + 3) / 4 * 4;
    }
}
