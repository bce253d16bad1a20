// Writes the "newc" cpio format (the one the Linux initramfs unpacker reads): ASCII headers, 4-byte alignment.
using System.Globalization;
using System.Text;

namespace Orchestrator.Hypervisor.Qemu;

public sealed class CpioNewcWriter(Stream output)
{
    private const string Magic = "070701";
    private const int TypeDirectory = 0x4000;   // S_IFDIR
    private const int TypeRegularFile = 0x8000; // S_IFREG

    private readonly Stream _output = output;
    private long _written;
    private int _nextInode = 1;
    private bool _finished;

    public void AddDirectory(string path, int permissions = 0x1ED /* 0755 */) =>
        WriteEntry(path, TypeDirectory | permissions, nlink: 2, ReadOnlySpan<byte>.Empty);

    public void AddFile(string path, ReadOnlySpan<byte> content, int permissions = 0x1A4 /* 0644 */) =>
        WriteEntry(path, TypeRegularFile | permissions, nlink: 1, content);

    /// <summary>Writes the TRAILER!!! entry that ends the archive.</summary>
    public void Finish()
    {
        if (_finished)
        {
            return;
        }

        WriteEntry("TRAILER!!!", 0, nlink: 1, ReadOnlySpan<byte>.Empty, inode: 0);
        _finished = true;
    }

    private void WriteEntry(string path, int mode, int nlink, ReadOnlySpan<byte> content, int? inode = null)
    {
        if (_finished)
        {
            throw new InvalidOperationException("the archive is finished");
        }

        if (path.Length == 0 || path.StartsWith('/') || path.Contains('\0'))
        {
            throw new ArgumentException($"cpio path must be relative and non-empty: '{path}'", nameof(path));
        }

        var name = Encoding.UTF8.GetBytes(path);
        var header = new StringBuilder(110);
        header.Append(Magic);
        foreach (var field in new long[]
                 {
                     inode ?? _nextInode++, mode, 0 /* uid */, 0 /* gid */, nlink, 0 /* mtime: reproducible */,
                     content.Length, 0, 0 /* dev */, 0, 0 /* rdev */, name.Length + 1, 0 /* check */,
                 })
        {
            header.Append(field.ToString("X8", CultureInfo.InvariantCulture));
        }

        Write(Encoding.ASCII.GetBytes(header.ToString()));
        Write(name);
        Write([0]);
        Pad();
        Write(content);
        Pad();
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        _output.Write(bytes);
        _written += bytes.Length;
    }

    private void Pad()
    {
        var padding = (int)((4 - (_written % 4)) % 4);
        if (padding > 0)
        {
            Write(new byte[padding]);
        }
    }
}
